//! Test support shared by the crates' integration tests: a private software TPM per test
//! (swtpm on free loopback ports, killed in Drop) and a loopback proxy that counts the TPM
//! commands a client sends. swtpm gives no security; it stands in for a TPM only in tests.
#![forbid(unsafe_code)]

mod abrmd;
pub mod commands;
mod proxy;
mod swtpm;

pub use abrmd::Abrmd;
pub use proxy::{CommandLog, Tamper};
pub use swtpm::Swtpm;

/// Runs a tpm2-tools command against `tcti`, panicking with its stderr when it fails.
pub fn tpm2(tcti: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .env("TPM2TOOLS_TCTI", tcti)
        .env("TSS2_LOG", "all+none")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (install tpm2-tools)", args[0]));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Persists an ECC storage primary at 0x81000001 with tpm2-tools, as a provisioned machine has.
pub fn persist_srk(tcti: &str, dir: &std::path::Path) {
    let ctx = dir.join("srk.ctx");
    let ctx = ctx.to_str().expect("utf-8 temp path");
    // The TCG provisioning guidance's template, as systemd makes it (tpm2-tools' default lacks noDA)
    let attributes = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt";
    tpm2(tcti, &["tpm2_createprimary", "-Q", "-C", "o", "-G", "ecc", "-a", attributes, "-c", ctx]);
    tpm2(tcti, &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", ctx, "0x81000001"]);
    // Without a resource manager the transient copy stays loaded: free its slot.
    tpm2(tcti, &["tpm2_flushcontext", "-t"]);
}

/// Number of transient objects loaded in the TPM (swtpm without a resource manager has 3 slots).
pub fn transient_objects(tcti: &str) -> usize {
    tpm2(tcti, &["tpm2_getcap", "handles-transient"]).lines().filter(|l| l.trim_start().starts_with("- 0x")).count()
}

/// A TPM device only in name: an empty file `tpmrm0`, root:root mode 0660, in a directory anyone
/// may enter, so that a program run as "nobody" ([`as_nobody`]) sees it but may not open it. `None`
/// (the caller skips) unless this runs as root with setpriv.
pub fn unopenable_device() -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let root = std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root || std::process::Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIP: needs root and setpriv to run as another user");
        return None;
    }
    let dir = tempfile::Builder::new().prefix("fake-dev-").tempdir().expect("temp dir");
    let device = dir.path().join("tpmrm0");
    std::fs::write(&device, b"").expect("fake device");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&device, std::fs::Permissions::from_mode(0o660)).expect("chmod");
    Some((dir, device))
}

/// `program` as the user "nobody", without supplementary groups (setpriv).
pub fn as_nobody(program: &str) -> std::process::Command {
    let mut command = std::process::Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
    command
}
