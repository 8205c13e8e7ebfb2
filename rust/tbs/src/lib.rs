//! Windows' TPM Base Services (TBS): the one place keepassxc-tpm calls tbs.dll, so that the core
//! crate keeps `#![forbid(unsafe_code)]`. A [`Context`] is one TBS context: TBS virtualises the
//! transient objects and sessions of each context and flushes them when it closes (as the kernel's
//! /dev/tpmrm0 does for a file descriptor), and it answers a command Windows blocks for this user
//! with [`COMMAND_BLOCKED`] in the response code, not with a failure of the call.
//!
//! # Notes on code safety
//! The FFI calls are the four TBS functions, each with buffers whose lengths are passed alongside;
//! the context handle is created once, used only through `&mut self` (TBS contexts are not to be
//! used by two threads at once) and closed once in `Drop`. On other systems this crate is empty.
#![cfg_attr(not(windows), forbid(unsafe_code))]

/// TPM_E_COMMAND_BLOCKED: the response code TBS puts in the answer to a command Windows does not
/// let this user send (EvictControl and NV_DefineSpace for standard users, among others).
pub const COMMAND_BLOCKED: u32 = 0x8028_0400;

/// TBS_E_TPM_NOT_FOUND: no TPM (of the version asked for) behind TBS.
pub const TPM_NOT_FOUND: u32 = 0x8028_400F;

pub mod probe;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{device_info, Context, DeviceInfo};
