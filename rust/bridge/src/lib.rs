//! The staticlib KeePassXC links: one `#[cxx::bridge]` module that lists TPM HMAC keys and
//! answers challenges. It does not link tpm2-tss: the TPM backend (a shared library that does)
//! is loaded at run time (`loader`), so KeePassXC starts and works where tpm2-tss is absent and
//! simply lists no TPM key. No logic of its own beyond moving bytes and mapping status codes (a
//! Rust `Result` would become a C++ exception).
// cxx's generated glue and the loader's dlopen are unsafe FFI; the rest is safe code.
#![deny(unsafe_code)]

mod loader;

use keepassxc_tpm_abi::{status, FILE_KEY_SERIALS, TPM_SERIALS};
use zeroize::Zeroizing;

#[allow(unsafe_code)]
#[cxx::bridge(namespace = "keepassxc_tpm")]
mod ffi {
    /// What went wrong, in the terms a KeePassXC user can act on. The values are the ABI's
    /// status codes (`keepassxc_tpm_abi::status`, checked below), so a code needs no table.
    #[derive(Debug)]
    enum Status {
        Ok = 0,
        /// No TPM could be reached (no device, no resource manager, TCTI module missing).
        NoTpm = 1,
        /// The TPM device exists but this user may not open it.
        PermissionDenied = 2,
        /// Nothing is stored at the key's handle (deleted, or the TPM was cleared).
        NoSuchKey = 3,
        /// The handle holds something else, e.g. the storage root key.
        NotHmacKey = 4,
        /// The TPM's dictionary-attack protection is locked out.
        Lockout = 5,
        /// The key's PIN was wrong; the message says how many tries are left.
        AuthFailed = 6,
        /// The key needs a PIN: ask the user, then call `challenge_with_pin`.
        PinRequired = 7,
        /// The TPM's storage key is not the one the key was created under (another TPM, or
        /// something on the bus answering for it).
        StorageKeyChanged = 8,
        /// The key is bound to a boot state (PCRs) that has changed.
        PolicyFailed = 9,
        /// The challenge is longer than a YubiKey slot accepts (64 bytes).
        BadChallenge = 10,
        /// The response buffer given by the caller is too small.
        BufferTooSmall = 11,
        /// Any other TPM or TSS failure; the message holds the return code.
        TpmError = 12,
        /// The keepassxc-tpm metadata file cannot be used, or its record of the key names
        /// another key; the message says which file and what to do.
        Metadata = 13,
    }

    /// One TPM HMAC key as KeePassXC addresses it: read from the backend's JSON, the key summary
    /// `tpm-hmac list --json` prints too (its other fields are not needed here).
    #[derive(Deserialize)]
    struct ListedKey {
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
        keys: Vec<ListedKey>,
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
        /// `challenge` for a key with a PIN (the bytes the user typed, UTF-8 as a rule).
        fn challenge_with_pin(
            serial: u32,
            slot: i32,
            challenge: &[u8],
            pin: &[u8],
            response: &mut [u8],
        ) -> ChallengeResult;
        /// Checks that the key answers, without returning the response.
        fn test_challenge(serial: u32, slot: i32) -> ChallengeResult;
    }
}

use ffi::{ChallengeResult, KeyList, ListedKey, Status};

// Each status is the ABI's code for it.
const _: () = {
    assert!(Status::Ok.repr as u32 == status::OK);
    assert!(Status::NoTpm.repr as u32 == status::NO_TPM);
    assert!(Status::PermissionDenied.repr as u32 == status::PERMISSION_DENIED);
    assert!(Status::NoSuchKey.repr as u32 == status::NO_SUCH_KEY);
    assert!(Status::NotHmacKey.repr as u32 == status::NOT_HMAC_KEY);
    assert!(Status::Lockout.repr as u32 == status::LOCKOUT);
    assert!(Status::AuthFailed.repr as u32 == status::AUTH_FAILED);
    assert!(Status::PinRequired.repr as u32 == status::PIN_REQUIRED);
    assert!(Status::StorageKeyChanged.repr as u32 == status::STORAGE_KEY_CHANGED);
    assert!(Status::PolicyFailed.repr as u32 == status::POLICY_FAILED);
    assert!(Status::BadChallenge.repr as u32 == status::BAD_CHALLENGE);
    assert!(Status::BufferTooSmall.repr as u32 == status::BUFFER_TOO_SMALL);
    assert!(Status::TpmError.repr as u32 == status::TPM_ERROR);
    assert!(Status::Metadata.repr as u32 == status::METADATA);
};

/// The status of an ABI code; a code this bridge does not know (a newer backend) is a TPM error.
fn status_of(code: u32) -> Status {
    match u8::try_from(code) {
        Ok(repr) if u32::from(repr) <= status::METADATA => Status { repr },
        _ => Status::TpmError,
    }
}

/// Runs `f`, turning a panic into `TpmError`: cxx would abort KeePassXC on a panic.
fn guarded<T>(f: impl FnOnce() -> T, failed: impl FnOnce(String) -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| failed("internal error in the keepassxc-tpm bridge (a bug: please report it)".to_owned()))
}

pub fn list_keys() -> KeyList {
    guarded(
        || {
            let listed = loader::backend().and_then(|backend| backend.list_keys());
            match listed.and_then(|json| {
                serde_json::from_str::<Vec<ListedKey>>(&json)
                    .map_err(|e| (status::TPM_ERROR, format!("bad key list: {e}")))
            }) {
                Ok(keys) => KeyList { status: Status::Ok, message: String::new(), keys },
                Err((code, message)) => KeyList { status: status_of(code), message, keys: Vec::new() },
            }
        },
        |message| KeyList { status: Status::TpmError, message, keys: Vec::new() },
    )
}

pub fn is_tpm_serial(serial: u32) -> bool {
    TPM_SERIALS.contains(&serial) || FILE_KEY_SERIALS.contains(&serial)
}

pub fn challenge(serial: u32, slot: i32, challenge: &[u8], response: &mut [u8]) -> ChallengeResult {
    respond(serial, slot, challenge, None, response)
}

pub fn challenge_with_pin(
    serial: u32,
    slot: i32,
    challenge: &[u8],
    pin: &[u8],
    response: &mut [u8],
) -> ChallengeResult {
    respond(serial, slot, challenge, Some(pin), response)
}

fn respond(serial: u32, slot: i32, challenge: &[u8], pin: Option<&[u8]>, response: &mut [u8]) -> ChallengeResult {
    guarded(
        || match loader::backend().and_then(|backend| backend.challenge(serial, slot, challenge, pin, response)) {
            Ok(len) => ChallengeResult { status: Status::Ok, message: String::new(), response_len: len },
            Err((code, message)) => ChallengeResult { status: status_of(code), message, response_len: 0 },
        },
        |message| ChallengeResult { status: Status::TpmError, message, response_len: 0 },
    )
}

pub fn test_challenge(serial: u32, slot: i32) -> ChallengeResult {
    let mut scratch = Zeroizing::new([0u8; 64]);
    let mut result = challenge(serial, slot, &[0u8; 32], &mut scratch[..]);
    result.response_len = 0;
    result
}

/// Loads the backend at `path` as KeePassXC does (the same owner, mode and interface-version
/// checks), for health checks such as `tpm-hmac doctor`; why it cannot be loaded otherwise.
pub fn check_backend(path: &std::path::Path) -> Result<(), String> {
    loader::load_from(&[path.to_path_buf()]).map(drop)
}

/// The functions as C++ calls them, for the crate's own tests (cxx's glue is what KeePassXC uses).
#[doc(hidden)]
pub mod testing {
    pub use super::ffi::{ChallengeResult, KeyList, Status};
    pub use super::loader::{load_from, BACKEND_ENV};
    pub use super::{challenge, challenge_with_pin, is_tpm_serial, list_keys, test_challenge};
}
