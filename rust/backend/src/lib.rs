//! The TPM backend KeePassXC loads at run time: the only part of the KeePassXC integration that
//! links tpm2-tss. It serves the versioned C interface of `keepassxc-tpm-abi` on top of the core
//! crate; the bridge linked into KeePassXC finds it with libloading.
//!
//! # Notes on code safety
//! The exported functions take raw pointers from C, which needs `unsafe`; each one only turns
//! them into slices after checking for null, and writes at most `cap` bytes into a caller's
//! buffer. Everything else is safe Rust in the core crate.

use std::sync::Mutex;

use keepassxc_tpm::{ErrorKind, KeyHandle, Pin, Tpm, TpmWorker, DEFAULT_TIMEOUT};
use keepassxc_tpm_abi::{status, BackendV1, Buffer, KeyEntry, ABI_VERSION};

/// One TPM connection per process, on its own thread, reused while it works: KeePassXC detects
/// keys on a worker thread and challenges on another; the mutex serialises them, and the
/// worker's timeout turns a TPM that stopped answering into an error instead of a hung unlock.
static WORKER: Mutex<Option<TpmWorker>> = Mutex::new(None);

fn with_tpm<T: Send + 'static>(
    job: impl FnOnce(&mut Tpm) -> keepassxc_tpm::Result<T> + Send + 'static,
) -> keepassxc_tpm::Result<T> {
    let mut guard = WORKER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let worker = guard.get_or_insert_with(|| TpmWorker::start(None, DEFAULT_TIMEOUT));
    let result = worker.run(job);
    if let Err(keepassxc_tpm::Error::Timeout { .. }) = result {
        // The old worker may stay stuck in a read; the next call gets a new one.
        *guard = None;
    }
    result
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
        _ => status::TPM_ERROR,
    }
}

/// The keys as JSON, or (status, message).
pub fn list_keys() -> Result<String, (u32, String)> {
    let keys = with_tpm(|tpm| tpm.list_keys()).map_err(|e| (status_of(e.kind()), e.to_string()))?;
    let entries: Vec<KeyEntry> =
        keys.iter().map(|k| KeyEntry { serial: k.serial(), slot: k.slot(), display_name: k.display_name() }).collect();
    serde_json::to_string(&entries).map_err(|e| (status::TPM_ERROR, e.to_string()))
}

/// Writes the response into `response`; returns its length, or (status, message).
pub fn challenge(
    serial: u32,
    slot: i32,
    challenge: &[u8],
    pin: Option<&str>,
    response: &mut [u8],
) -> Result<usize, (u32, String)> {
    let fail = |e: keepassxc_tpm::Error| (status_of(e.kind()), e.to_string());
    let handle = KeyHandle::from_address(serial, slot).map_err(fail)?;
    let pin = pin.map(Pin::new).transpose().map_err(|e| (status::AUTH_FAILED, e.to_string()))?;
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

// ---- the C interface ----

/// Copies `bytes` into `buffer` as far as it fits and sets `len` to the full length.
///
/// # Safety
/// `buffer` is null or points to a `Buffer` whose `ptr` is valid for `cap` bytes of writing.
unsafe fn fill(buffer: *mut Buffer, bytes: &[u8]) -> bool {
    let Some(buffer) = buffer.as_mut() else { return false };
    buffer.len = bytes.len();
    if buffer.ptr.is_null() || bytes.len() > buffer.cap {
        return false;
    }
    std::slice::from_raw_parts_mut(buffer.ptr, buffer.cap)[..bytes.len()].copy_from_slice(bytes);
    true
}

unsafe extern "C" fn c_list_keys(keys: *mut Buffer, message: *mut Buffer) -> u32 {
    match list_keys() {
        Ok(json) if fill(keys, json.as_bytes()) => status::OK,
        Ok(_) => status::BUFFER_TOO_SMALL,
        Err((code, text)) => {
            fill(message, text.as_bytes());
            code
        }
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn c_challenge(
    serial: u32,
    slot: i32,
    challenge_ptr: *const u8,
    challenge_len: usize,
    pin_ptr: *const u8,
    pin_len: usize,
    response: *mut Buffer,
    message: *mut Buffer,
) -> u32 {
    let challenge_bytes: &[u8] =
        if challenge_ptr.is_null() { &[] } else { std::slice::from_raw_parts(challenge_ptr, challenge_len) };
    let pin = if pin_ptr.is_null() {
        None
    } else {
        match std::str::from_utf8(std::slice::from_raw_parts(pin_ptr, pin_len)) {
            Ok(text) => Some(text),
            Err(_) => {
                fill(message, b"the PIN is not UTF-8");
                return status::AUTH_FAILED;
            }
        }
    };
    let Some(out) = response.as_mut().filter(|b| !b.ptr.is_null()) else {
        fill(message, b"no response buffer");
        return status::BUFFER_TOO_SMALL;
    };
    let out_slice = std::slice::from_raw_parts_mut(out.ptr, out.cap);
    match self::challenge(serial, slot, challenge_bytes, pin, out_slice) {
        Ok(len) => {
            out.len = len;
            status::OK
        }
        Err((code, text)) => {
            out.len = 0;
            fill(message, text.as_bytes());
            code
        }
    }
}

static BACKEND: BackendV1 = BackendV1 { abi_version: ABI_VERSION, list_keys: c_list_keys, challenge: c_challenge };

/// The ABI version this backend serves; the loader checks it before anything else.
#[no_mangle]
pub extern "C" fn keepassxc_tpm_backend_abi_version() -> u32 {
    ABI_VERSION
}

/// The backend's function table (static: never freed).
#[no_mangle]
pub extern "C" fn keepassxc_tpm_backend_v1() -> *const BackendV1 {
    &BACKEND
}
