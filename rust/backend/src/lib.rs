//! The TPM backend KeePassXC loads at run time: the only part of the KeePassXC integration that
//! links tpm2-tss. It serves the versioned C interface of `keepassxc-tpm-abi` on top of the core
//! crate; the bridge linked into KeePassXC finds it with libloading.
//!
//! # Code structure
//! - this file: the backend in safe Rust (one TPM worker per process, statuses, the challenge);
//! - `c_abi`: the exported C functions and the function table, the only unsafe code.
//!
//! # Notes on code safety
//! The exported functions take raw pointers from C, which needs `unsafe`; each one only turns
//! them into slices after checking for null, and writes at most `cap` bytes into a caller's
//! buffer. All of them are in `c_abi`; unsafe code is denied everywhere else, and everything else
//! is safe Rust in the core crate.
#![deny(unsafe_code)]

use std::sync::Mutex;

use keepassxc_tpm::{ErrorKind, KeySummary, PersistentHandle, Pin, Tpm, TpmOptions, TpmWorker, DEFAULT_TIMEOUT};
use keepassxc_tpm_abi::status;

/// One TPM connection per process, on its own thread, reused while it works: KeePassXC detects
/// keys on a worker thread and challenges on another; the mutex serialises them, and the
/// worker's timeout turns a TPM that stopped answering into an error instead of a hung unlock.
static WORKER: Mutex<Option<TpmWorker>> = Mutex::new(None);

fn with_tpm<T: Send + 'static>(
    job: impl FnOnce(&mut Tpm) -> keepassxc_tpm::Result<T> + Send + 'static,
) -> keepassxc_tpm::Result<T> {
    let mut guard = WORKER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // After a timeout the worker starts a new thread and connection itself.
    guard.get_or_insert_with(|| TpmWorker::start(TpmOptions::default(), DEFAULT_TIMEOUT)).run(job)
}

fn status_of(kind: ErrorKind) -> u32 {
    match kind {
        ErrorKind::NoTpm => status::NO_TPM,
        ErrorKind::PermissionDenied => status::PERMISSION_DENIED,
        ErrorKind::NoSuchKey | ErrorKind::BadHandle => status::NO_SUCH_KEY,
        ErrorKind::NotHmacKey => status::NOT_HMAC_KEY,
        ErrorKind::Lockout => status::LOCKOUT,
        ErrorKind::AuthFailed => status::AUTH_FAILED,
        ErrorKind::PinRequired => status::PIN_REQUIRED,
        ErrorKind::StorageKeyChanged => status::STORAGE_KEY_CHANGED,
        ErrorKind::PolicyFailed => status::POLICY_FAILED,
        ErrorKind::BadChallenge => status::BAD_CHALLENGE,
        ErrorKind::Metadata => status::METADATA,
        _ => status::TPM_ERROR,
    }
}

/// The keys as JSON, or (status, message).
pub fn list_keys() -> Result<String, (u32, String)> {
    let keys = with_tpm(|tpm| tpm.list_keys()).map_err(|e| (status_of(e.kind()), e.explained()))?;
    let summaries: Vec<KeySummary> = keys.iter().map(KeySummary::from).collect();
    serde_json::to_string(&summaries).map_err(|e| (status::TPM_ERROR, e.to_string()))
}

/// Writes the response into `response`; returns its length, or (status, message).
pub fn challenge(
    serial: u32,
    slot: i32,
    challenge: &[u8],
    pin: Option<&[u8]>,
    response: &mut [u8],
) -> Result<usize, (u32, String)> {
    let fail = |e: keepassxc_tpm::Error| (status_of(e.kind()), e.explained());
    let handle = PersistentHandle::from_address(serial, slot).map_err(|bad| fail(bad.into()))?;
    let pin = pin.map(Pin::new).transpose().map_err(fail)?;
    let challenge = challenge.to_vec();
    let bytes = with_tpm(move |tpm| tpm.challenge_with_pin(handle, &challenge, pin.as_ref())).map_err(fail)?;
    if bytes.len() > response.len() {
        return Err((
            status::BUFFER_TOO_SMALL,
            format!("the response has {} bytes but the buffer only {}", bytes.len(), response.len()),
        ));
    }
    response[..bytes.len()].copy_from_slice(&bytes);
    Ok(bytes.len())
}

#[allow(unsafe_code)]
mod c_abi;
