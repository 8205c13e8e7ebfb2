//! One line per failure on stderr (pcscd's log), each marked as this driver's; never a challenge,
//! a response or a secret.
#![forbid(unsafe_code)]

/// Writes one line to stderr with the driver's prefix.
macro_rules! log {
    ($($arg:tt)*) => {
        eprintln!("keepassxc-tpm-pcsc: {}", format_args!($($arg)*))
    };
}
pub(crate) use log;
