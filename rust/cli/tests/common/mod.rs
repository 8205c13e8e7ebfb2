//! What the CLI's integration tests share: `tpm-hmac` run as a user runs it, on a test's TPM and
//! record file (never the user's own), as root itself rather than for a user who ran sudo.
#![allow(dead_code)] // each test binary uses some of it

use std::path::Path;
use std::process::Command;

/// `tpm-hmac --tcti TCTI` with the record file `metadata` (its arguments to be added).
pub fn tpm_hmac(tcti: &str, metadata: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tpm-hmac"));
    command
        .args(["--tcti", tcti])
        .env("KEEPASSXC_TPM_METADATA", metadata)
        .env_remove("SUDO_USER")
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID");
    command
}
