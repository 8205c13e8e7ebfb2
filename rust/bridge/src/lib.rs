//! The staticlib KeePassXC links: one `#[cxx::bridge]` module that lists TPM HMAC keys and
//! answers challenges through the core crate. No logic of its own beyond mapping the core's
//! errors onto a status enum (a Rust `Result` would become a C++ exception).
// cxx's generated glue is unsafe FFI; everything written by hand here is safe code.
#![deny(unsafe_code)]

use std::sync::Mutex;

use keepassxc_tpm::{ErrorKind, KeyHandle, Pin, Tpm, TpmWorker, DEFAULT_TIMEOUT};
use zeroize::Zeroizing;

#[allow(unsafe_code)]
#[cxx::bridge(namespace = "keepassxc_tpm")]
mod ffi {
    /// What went wrong, in the terms a KeePassXC user can act on.
    #[derive(Debug)]
    enum Status {
        Ok,
        /// No TPM could be reached (no device, no resource manager, TCTI module missing).
        NoTpm,
        /// The TPM device exists but this user may not open it.
        PermissionDenied,
        /// Nothing is stored at the key's handle (deleted, or the TPM was cleared).
        NoSuchKey,
        /// The handle holds something else, e.g. the storage root key.
        NotHmacKey,
        /// The TPM's dictionary-attack protection is locked out.
        Lockout,
        /// The key's PIN was wrong; the message says how many tries are left.
        AuthFailed,
        /// The key needs a PIN: ask the user, then call `challenge_with_pin`.
        PinRequired,
        /// The TPM's storage key is not the one the key was created under (another TPM, or
        /// something on the bus answering for it).
        StorageKeyChanged,
        /// The key is bound to a boot state (PCRs) that has changed.
        PolicyFailed,
        /// The challenge is longer than a YubiKey slot accepts (64 bytes).
        BadChallenge,
        /// The response buffer given by the caller is too small.
        BufferTooSmall,
        /// Any other TPM or TSS failure; the message holds the return code.
        TpmError,
    }

    /// One TPM HMAC key as KeePassXC addresses it.
    struct KeyInfo {
        /// The persistent handle as an unsigned 32-bit number (always >= 0x81000000).
        serial: u32,
        /// Always 1: a TPM key has one "slot".
        slot: i32,
        /// E.g. "TPM 2.0 HMAC-SHA1 0x81000100"; KeePassXC appends " [serial] - Slot 1".
        display_name: String,
    }

    struct KeyList {
        status: Status,
        /// Detail for the log (English, no secrets); empty on success.
        message: String,
        keys: Vec<KeyInfo>,
    }

    struct ChallengeResult {
        status: Status,
        /// Detail for the log (English, no secrets); empty on success.
        message: String,
        /// Bytes of `response` that were written (20 for HMAC-SHA1, 32 for HMAC-SHA256).
        response_len: usize,
    }

    extern "Rust" {
        /// Every HMAC key in the TPM's persistent storage.
        fn list_keys() -> KeyList;
        /// True when `serial` is in the TPM persistent-handle range (no TPM access).
        fn is_tpm_serial(serial: u32) -> bool;
        /// Computes the response a YubiKey slot in variable-length HMAC mode would give for
        /// `challenge` (the raw KeePassXC challenge, 0..=64 bytes, unpadded) into `response`
        /// (give it at least 64 bytes). Nothing is kept in Rust memory afterwards.
        fn challenge(serial: u32, slot: i32, challenge: &[u8], response: &mut [u8]) -> ChallengeResult;
        /// `challenge` for a key with a PIN (as the user typed it, UTF-8).
        fn challenge_with_pin(
            serial: u32,
            slot: i32,
            challenge: &[u8],
            pin: &str,
            response: &mut [u8],
        ) -> ChallengeResult;
        /// Checks that the key answers, without returning the response.
        fn test_challenge(serial: u32, slot: i32) -> ChallengeResult;
    }
}

use ffi::{ChallengeResult, KeyInfo, KeyList, Status};

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

fn status_of(kind: ErrorKind) -> Status {
    match kind {
        ErrorKind::NoTpm => Status::NoTpm,
        ErrorKind::PermissionDenied => Status::PermissionDenied,
        ErrorKind::NoSuchKey | ErrorKind::BadHandle => Status::NoSuchKey,
        ErrorKind::NotHmacKey => Status::NotHmacKey,
        ErrorKind::Lockout => Status::Lockout,
        ErrorKind::AuthFailed => Status::AuthFailed,
        ErrorKind::PinRequired => Status::PinRequired,
        ErrorKind::StorageKeyChanged => Status::StorageKeyChanged,
        ErrorKind::PolicyFailed => Status::PolicyFailed,
        ErrorKind::BadChallenge => Status::BadChallenge,
        _ => Status::TpmError,
    }
}

pub fn list_keys() -> KeyList {
    match with_tpm(|tpm| tpm.list_keys()) {
        Ok(keys) => KeyList {
            status: Status::Ok,
            message: String::new(),
            keys: keys
                .iter()
                .map(|k| KeyInfo { serial: k.serial(), slot: k.slot(), display_name: k.display_name() })
                .collect(),
        },
        Err(e) => KeyList { status: status_of(e.kind()), message: e.to_string(), keys: Vec::new() },
    }
}

pub fn is_tpm_serial(serial: u32) -> bool {
    KeyHandle::from_serial(serial).is_ok()
}

fn failure(status: Status, message: String) -> ChallengeResult {
    ChallengeResult { status, message, response_len: 0 }
}

pub fn challenge(serial: u32, slot: i32, challenge: &[u8], response: &mut [u8]) -> ChallengeResult {
    respond(serial, slot, challenge, None, response)
}

pub fn challenge_with_pin(serial: u32, slot: i32, challenge: &[u8], pin: &str, response: &mut [u8]) -> ChallengeResult {
    match Pin::new(pin) {
        Ok(pin) => respond(serial, slot, challenge, Some(pin), response),
        Err(e) => failure(Status::AuthFailed, e.to_string()),
    }
}

fn respond(serial: u32, slot: i32, challenge: &[u8], pin: Option<Pin>, response: &mut [u8]) -> ChallengeResult {
    let handle = match KeyHandle::from_address(serial, slot) {
        Ok(h) => h,
        Err(e) => return failure(status_of(e.kind()), e.to_string()),
    };
    let challenge = challenge.to_vec();
    let answer = with_tpm(move |tpm| tpm.challenge_with_pin(handle, &challenge, pin.as_ref()));
    match answer {
        Ok(bytes) if bytes.len() <= response.len() => {
            response[..bytes.len()].copy_from_slice(&bytes);
            ChallengeResult { status: Status::Ok, message: String::new(), response_len: bytes.len() }
        }
        Ok(bytes) => failure(
            Status::BufferTooSmall,
            format!("the response has {} bytes but the buffer only {}", bytes.len(), response.len()),
        ),
        Err(e) => failure(status_of(e.kind()), e.to_string()),
    }
}

pub fn test_challenge(serial: u32, slot: i32) -> ChallengeResult {
    let mut scratch = Zeroizing::new([0u8; 64]);
    let mut result = challenge(serial, slot, &[0u8; 32], &mut scratch[..]);
    result.response_len = 0;
    result
}

/// The functions as C++ calls them, for the crate's own tests (cxx's glue is what KeePassXC uses).
#[doc(hidden)]
pub mod testing {
    pub use super::ffi::{ChallengeResult, KeyList, Status};
    pub use super::{challenge, challenge_with_pin, is_tpm_serial, list_keys, test_challenge};
}
