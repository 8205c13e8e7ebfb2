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
