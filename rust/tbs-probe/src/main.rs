//! `tpm-hmac-tbs-probe`: which of the TPM commands keepassxc-tpm needs Windows passes to the TPM
//! for the user who runs it. Windows' TPM Base Services (TBS) keep fixed allow-lists per user kind
//! (Windows 10 1809 and later); which of Create, Load, StartAuthSession and HMAC a standard user may
//! send is not documented, and EvictControl is documented as blocked. Each command is sent through
//! TBS with an empty parameter area: a command Windows blocks comes back with TPM_E_COMMAND_BLOCKED
//! (0x80280400) from TBS itself; any other answer (the TPM refusing the empty parameters) shows the
//! command reached the TPM. Nothing is created, loaded or changed.
//!
//! Run it as the user who will use the keys and send its output to the project (README, Windows).
//! Exit codes: 0 probed (whatever was blocked), 1 no TPM reachable through TBS, 2 not Windows.
#![forbid(unsafe_code)]

#[cfg(windows)]
mod tbs;

#[cfg(windows)]
fn main() -> std::process::ExitCode {
    tbs::probe()
}

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    eprintln!("tpm-hmac-tbs-probe: this probe asks Windows' TPM Base Services; run it on Windows");
    std::process::ExitCode::from(2)
}
