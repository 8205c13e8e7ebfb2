//! The TPM backend KeePassXC loads at run time: the only part of the KeePassXC integration that
//! links tpm2-tss. It serves the versioned C interface of `keepassxc-tpm-abi` on top of the core
//! crate; the bridge linked into KeePassXC finds it with libloading.
//!
//! # Notes on code safety
//! The exported functions take raw pointers from C, which needs `unsafe`; each one only turns
//! them into slices after checking for null, and writes at most `cap` bytes into a caller's
//! buffer. Everything else is safe Rust in the core crate.

use std::sync::Mutex;

use keepassxc_tpm::{ErrorKind, KeySummary, PersistentHandle, Pin, Tpm, TpmOptions, TpmWorker, DEFAULT_TIMEOUT};
use keepassxc_tpm_abi::{status, BackendV1, Buffer, ABI_VERSION};

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

// ---- the C interface ----

/// Copies `bytes` into `buffer` when they fit and sets `len` to their full length (so a caller
/// can retry with a larger buffer).
///
/// # Safety
/// `buffer` is null or points to a `Buffer` whose `ptr` is valid for `cap` bytes of writing.
unsafe fn fill(buffer: *mut Buffer, bytes: &[u8]) -> bool {
    // SAFETY: the caller promises `buffer` is null or valid.
    let Some(buffer) = (unsafe { buffer.as_mut() }) else { return false };
    buffer.len = bytes.len();
    if buffer.ptr.is_null() || bytes.len() > buffer.cap {
        return false;
    }
    // SAFETY: `ptr` is valid for `cap` bytes (the caller's promise), and is not null.
    let out = unsafe { std::slice::from_raw_parts_mut(buffer.ptr, buffer.cap) };
    out[..bytes.len()].copy_from_slice(bytes);
    true
}

/// Copies as much of `text` as fits into `buffer`, cut at a character boundary.
///
/// # Safety
/// As for [`fill`].
unsafe fn fill_message(buffer: *mut Buffer, text: &str) {
    // SAFETY: the caller promises `buffer` is null or valid.
    let cap = unsafe { buffer.as_ref() }.map_or(0, |b| b.cap);
    let mut end = text.len().min(cap);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    // SAFETY: passed on as the caller gave it.
    unsafe { fill(buffer, &text.as_bytes()[..end]) };
}

/// Runs `f`, turning a panic into an error status: a panic must never unwind into C, where it
/// would abort KeePassXC.
///
/// # Safety
/// As for [`fill`], for `message`.
unsafe fn guarded(message: *mut Buffer, f: impl FnOnce() -> u32) -> u32 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(_) => {
            // SAFETY: `message` as the caller gave it.
            unsafe { fill_message(message, "internal error in the TPM backend (a bug: please report it)") };
            status::TPM_ERROR
        }
    }
}

/// # Safety
/// `keys` and `message` are null or valid buffers (the ABI's contract with the bridge).
unsafe extern "C" fn c_list_keys(keys: *mut Buffer, message: *mut Buffer) -> u32 {
    // SAFETY: the buffers are as the ABI promises (above).
    unsafe {
        guarded(message, || match list_keys() {
            Ok(json) if fill(keys, json.as_bytes()) => status::OK,
            Ok(_) => status::BUFFER_TOO_SMALL,
            Err((code, text)) => {
                fill_message(message, &text);
                code
            }
        })
    }
}

/// # Safety
/// `challenge_ptr` and `pin_ptr` are null or valid for their lengths; `response` and `message`
/// are null or valid buffers (the ABI's contract with the bridge).
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
    // SAFETY: every pointer is null or valid for its length (above); nulls are checked first.
    unsafe {
        guarded(message, || {
            let challenge_bytes: &[u8] =
                if challenge_ptr.is_null() { &[] } else { std::slice::from_raw_parts(challenge_ptr, challenge_len) };
            let pin = (!pin_ptr.is_null()).then(|| std::slice::from_raw_parts(pin_ptr, pin_len));
            let Some(out) = response.as_mut().filter(|b| !b.ptr.is_null()) else {
                fill_message(message, "no response buffer");
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
                    fill_message(message, &text);
                    code
                }
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_not_dropped() {
        let mut bytes = [0xffu8; 16];
        let mut buffer = Buffer { ptr: bytes.as_mut_ptr(), cap: bytes.len(), len: 0 };
        let text = "wrong PIN: ääääääää and more";
        // SAFETY: the buffer points to a live array of its capacity.
        unsafe { fill_message(&mut buffer, text) };
        assert_eq!(buffer.len, 15, "cut before a two-byte character that does not fit");
        assert_eq!(std::str::from_utf8(&bytes[..buffer.len]).unwrap(), "wrong PIN: ää");
    }

    #[test]
    fn a_panic_becomes_an_error_status() {
        let mut bytes = [0u8; 128];
        let mut buffer = Buffer { ptr: bytes.as_mut_ptr(), cap: bytes.len(), len: 0 };
        // SAFETY: as above.
        let code = unsafe { guarded(&mut buffer, || panic!("boom")) };
        assert_eq!(code, status::TPM_ERROR);
        assert!(std::str::from_utf8(&bytes[..buffer.len]).unwrap().contains("internal error"));
    }
}
