//! The C interface KeePassXC's bridge loads: the exported functions and the function table of
//! `keepassxc-tpm-abi`, each turning C's pointers into Rust's types (after null checks) around the
//! safe functions of the crate root, and catching panics. The crate's only unsafe code.

use keepassxc_tpm_abi::{status, BackendV1, Buffer, ABI_VERSION};

use crate::{challenge, list_keys};

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
