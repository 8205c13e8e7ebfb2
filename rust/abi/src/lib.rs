//! The one interface between what is linked into KeePassXC (the bridge) and what is loaded at
//! run time (the backend, which links tpm2-tss). Plain C types only, so either side can be
//! rebuilt alone; the version is checked before anything else is called, and a mismatch is
//! refused with a message instead of a crash.
//!
//! Buffers are always the caller's: the backend writes into them and says how much it wrote, so
//! no allocation crosses the boundary and a response never sits in memory nobody zeroizes.
#![forbid(unsafe_code)]

/// Bumped whenever [`BackendV1`] or the meaning of a field changes. 2: serials of key files
/// ([`FILE_KEY_SERIALS`]) name TPM keys too (a version-1 backend refuses them as bad handles).
pub const ABI_VERSION: u32 = 2;
/// `extern "C" fn() -> u32`: the backend's ABI version, read first.
pub const VERSION_SYMBOL: &[u8] = b"keepassxc_tpm_backend_abi_version\0";
/// `extern "C" fn() -> *const BackendV1`.
pub const ENTRY_SYMBOL: &[u8] = b"keepassxc_tpm_backend_v1\0";
/// KeePassXC serials that name TPM keys: the owner's persistent handles. YubiKey serials never
/// reach 0x81000000.
pub const TPM_SERIALS: std::ops::RangeInclusive<u32> = 0x8100_0000..=0x817F_FFFF;
/// KeePassXC serials of TPM keys kept in files (TSS2 PRIVATE KEY) instead of persistent handles:
/// 0x82xxxxxx is a handle type the TPM does not have (Part 2, 7.2), so such a serial is never a
/// persistent handle's, and YubiKey serials (eight decimal digits) never reach it.
pub const FILE_KEY_SERIALS: std::ops::RangeInclusive<u32> = 0x8200_0000..=0x82FF_FFFF;
/// The backend's file name, as the loader looks for it.
pub const LIBRARY_NAME: &str = "libkeepassxc_tpm_backend.so";

/// Status codes: the bridge's cxx `Status` enum has these values (a compile-time check there);
/// they are contiguous, METADATA the last.
pub mod status {
    pub const OK: u32 = 0;
    pub const NO_TPM: u32 = 1;
    pub const PERMISSION_DENIED: u32 = 2;
    pub const NO_SUCH_KEY: u32 = 3;
    pub const NOT_HMAC_KEY: u32 = 4;
    pub const LOCKOUT: u32 = 5;
    pub const AUTH_FAILED: u32 = 6;
    pub const PIN_REQUIRED: u32 = 7;
    pub const STORAGE_KEY_CHANGED: u32 = 8;
    pub const POLICY_FAILED: u32 = 9;
    pub const BAD_CHALLENGE: u32 = 10;
    pub const BUFFER_TOO_SMALL: u32 = 11;
    pub const TPM_ERROR: u32 = 12;
    /// The metadata file cannot be used, or its record names another key.
    pub const METADATA: u32 = 13;
}

/// A caller's buffer: `len` is set by the backend (to the size needed when `cap` is too small).
#[repr(C)]
pub struct Buffer {
    pub ptr: *mut u8,
    pub cap: usize,
    pub len: usize,
}

/// The backend's functions. Every function writes an English detail (no secrets) into
/// `message` on failure and returns a [`status`] code.
#[repr(C)]
pub struct BackendV1 {
    pub abi_version: u32,
    /// The keys into `keys`: a JSON array of key summaries, the objects `tpm-hmac list --json`
    /// prints (`keepassxc_tpm::KeySummary`), of which the bridge reads `serial`, `slot` and
    /// `display_name`.
    pub list_keys: unsafe extern "C" fn(keys: *mut Buffer, message: *mut Buffer) -> u32,
    /// The response to `challenge` (raw KeePassXC challenge, 0..=64 bytes) into `response`.
    /// `pin` is null for no PIN, else `pin_len` bytes as typed (UTF-8 as a rule, any bytes work).
    pub challenge: unsafe extern "C" fn(
        serial: u32,
        slot: i32,
        challenge: *const u8,
        challenge_len: usize,
        pin: *const u8,
        pin_len: usize,
        response: *mut Buffer,
        message: *mut Buffer,
    ) -> u32,
}
