//! `tpm-hmac pcsc enable|disable|status` against a private swtpm and a private config file: what
//! root enables is what the driver serves; a PIN key is refused with the fork named as its way.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use swtpm_fixture::Swtpm;

const SECRET: &str = "303132333435363738393a3b3c3d3e3f40414243";

fn tpm_hmac(swtpm: &Swtpm, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tpm-hmac"))
        .arg("--tcti")
        .arg(swtpm.tcti())
        .args(args)
        .env("TSS2_LOG", "all+none")
        .env("KEEPASSXC_TPM_METADATA", swtpm.dir().join("keys.json"))
        .output()
        .expect("run tpm-hmac")
}

fn ok(swtpm: &Swtpm, args: &[&str]) -> Output {
    let out = tpm_hmac(swtpm, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn status(swtpm: &Swtpm, config: &Path) -> Value {
    let out = ok(swtpm, &["pcsc", "status", "--json", "--config", config.to_str().unwrap()]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

#[test]
fn enable_status_disable() {
    let swtpm = Swtpm::start();
    let secret = swtpm.dir().join("secret.hex");
    std::fs::write(&secret, SECRET).unwrap();
    let secret = secret.to_str().unwrap();
    ok(&swtpm, &["import", "--secret-file", secret, "--handle", "0x81000100"]);
    let pin = swtpm.dir().join("pin");
    std::fs::write(&pin, "2468").unwrap();
    ok(&swtpm, &["import", "--secret-file", secret, "--handle", "0x81000101", "--pin-file", pin.to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("etc/pcsc.json");
    let config_arg = config.to_str().unwrap();

    if !is_root() {
        let out = tpm_hmac(&swtpm, &["pcsc", "enable", "--handle", "0x81000100", "--config", config_arg]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("run it with sudo"));
        eprintln!("SKIP: the rest needs root");
        return;
    }
    let out = ok(&swtpm, &["pcsc", "enable", "--handle", "0x81000100", "--config", config_arg]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("without a restart"), "{said}");
    let status_now = status(&swtpm, &config);
    assert_eq!(status_now["served"][0]["handle"], "0x81000100");
    assert_eq!(status_now["served"][0]["keepassxc"], "1:2164261120");
    assert_eq!(status_now["tcti"], swtpm.tcti());

    let out = tpm_hmac(&swtpm, &["pcsc", "enable", "--handle", "0x81000101", "--config", config_arg]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("has a PIN") && said.contains("KeePassXC fork"), "{said}");
    assert_eq!(said.lines().count(), 1, "one line: {said}");

    let out = tpm_hmac(&swtpm, &["pcsc", "enable", "--handle", "0x81000102", "--config", config_arg]);
    assert!(!out.status.success(), "no key there");

    // The driver's own check of the file (a group-writable file is refused, by the CLI too).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o664)).unwrap();
    assert!(status(&swtpm, &config)["unusable"].as_str().unwrap().contains("writable by group"));
    let out = tpm_hmac(&swtpm, &["pcsc", "disable", "--handle", "0x81000100", "--config", config_arg]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("move it away"));
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();

    ok(&swtpm, &["pcsc", "disable", "--handle", "0x81000100", "--config", config_arg]);
    assert_eq!(status(&swtpm, &config)["served"], Value::Array(vec![]));
}
