//! Test support shared by the crates' integration tests: a private software TPM per test
//! (swtpm on free loopback ports, killed in Drop), a loopback proxy that counts the TPM
//! commands a client sends, tpm2-tools helpers, and what a YubiKey slot answers ([`yubikey`]). swtpm gives no security; it stands in for a TPM only in tests.
#![forbid(unsafe_code)]

mod abrmd;
pub mod commands;
mod proxy;
pub mod records;
mod swtpm;
pub mod yubikey;

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

/// TPM2_PT_LOCKOUT_COUNTER (the dictionary-attack failures counted) as tpm2-tools reads it,
/// around the project. libtpms answers the first DA-protected authorisation after its start with
/// TPM_RC_RETRY and does not count it: a test that asserts "no try counted" first uses a key with a
/// PIN correctly once ([`tpm2`] or the project), so that a wrong authorisation would be counted.
pub fn lockout_counter(tcti: &str) -> u32 {
    let properties = tpm2(tcti, &["tpm2_getcap", "properties-variable"]);
    let value = properties.lines().find_map(|l| l.strip_prefix("TPM2_PT_LOCKOUT_COUNTER: 0x"));
    u32::from_str_radix(value.unwrap_or_else(|| panic!("{properties}")), 16).expect("hex")
}

/// Persists at `handle` an HMAC-SHA1 key without a PIN in the form keys had before the empty
/// policy (authorised with its empty authValue: userWithAuth set, no authPolicy; noDA), made with
/// tpm2-tools under the SRK, as another tool or an older version of the project would have made it.
pub fn persist_authvalue_key(tcti: &str, dir: &std::path::Path, handle: u32) {
    persist_hmac_key(tcti, dir, handle, "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign|noda", None);
}

/// The key's owner replaces what sits at `handle` with tpm2-tools: evicts it, and persists a new
/// HMAC-SHA1 key with the PIN `pin` there (DA-protected: userWithAuth, no noDA), then uses it
/// correctly once so that libtpms counts the next wrong authorisation (see [`lockout_counter`]).
pub fn replace_with_pin_key(tcti: &str, dir: &std::path::Path, handle: u32, pin: &str) {
    let at = format!("0x{handle:08x}");
    tpm2(tcti, &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", &at]);
    persist_hmac_key(tcti, dir, handle, "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign", Some(pin));
    let path = |name: &str| dir.join(name).to_str().expect("utf-8 temp path").to_owned();
    std::fs::write(path("pin-in.bin"), b"first use").expect("temp file");
    tpm2(tcti, &["tpm2_hmac", "-c", &at, "-p", pin, "-o", &path("pin-out.bin"), &path("pin-in.bin")]);
    assert_eq!(lockout_counter(tcti), 0, "the new key's first use counted nothing");
}

/// Creates an HMAC-SHA1 key with `attributes` (and the authValue `pin`) under the SRK at 0x81000001
/// (persisted first with [`persist_srk`] when missing) with tpm2-tools, and persists it at `handle`.
fn persist_hmac_key(tcti: &str, dir: &std::path::Path, handle: u32, attributes: &str, pin: Option<&str>) {
    if !tpm2(tcti, &["tpm2_getcap", "handles-persistent"]).contains("0x81000001") {
        persist_srk(tcti, dir);
    }
    let path = |name: &str| dir.join(name).to_str().expect("utf-8 temp path").to_owned();
    let (public, private, context) = (path("hmac.pub"), path("hmac.priv"), path("hmac.ctx"));
    let mut create = vec!["tpm2_create", "-Q", "-C", "0x81000001", "-G", "hmac:sha1", "-a", attributes];
    create.extend(["-u", &public, "-r", &private]);
    if let Some(pin) = pin {
        create.extend(["-p", pin]);
    }
    tpm2(tcti, &create);
    tpm2(tcti, &["tpm2_load", "-Q", "-C", "0x81000001", "-u", &public, "-r", &private, "-c", &context]);
    tpm2(tcti, &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", &context, &format!("0x{handle:08x}")]);
    // Without a resource manager the loaded copy stays: free its slot.
    tpm2(tcti, &["tpm2_flushcontext", "-t"]);
}

/// A library cargo built for the workspace, next to the running test's executable (the test is in
/// target/PROFILE/deps, the libraries in target/PROFILE): run `cargo build --workspace` first.
pub fn workspace_library(file_name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's executable");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/PROFILE/deps/TEST");
    let library = profile_dir.join(file_name);
    assert!(library.exists(), "{} is missing: run `cargo build --workspace` first", library.display());
    library
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
