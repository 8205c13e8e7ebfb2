//! `tpm-hmac pcsc enable|disable|status` against a private swtpm and a private config file: what
//! root enables is what the driver serves; a PIN key is refused with the fork named as its way.
#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use swtpm_fixture::Swtpm;

use swtpm_fixture::yubikey::YUBIKEY_SECRET as SECRET;

fn command(swtpm: &Swtpm, args: &[&str]) -> Command {
    let mut command = common::tpm_hmac(&swtpm.tcti(), &swtpm.dir().join("keys.json"));
    command.args(args).env("TSS2_LOG", "all+none");
    command
}

fn tpm_hmac(swtpm: &Swtpm, args: &[&str]) -> Output {
    command(swtpm, args).output().expect("run tpm-hmac")
}

/// `tpm-hmac` as root under sudo, run by the user "nobody".
fn under_sudo(swtpm: &Swtpm, args: &[&str]) -> Output {
    let mut command = command(swtpm, args);
    command.env("SUDO_USER", "nobody").env("SUDO_UID", "65534").env("SUDO_GID", "65534");
    command.output().expect("run tpm-hmac")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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

/// A swtpm and a file holding the YubiKey twin's secret, for a test that needs root (`None`, with a
/// loud skip, for anyone else).
fn as_root_with_secret() -> Option<(Swtpm, std::path::PathBuf)> {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return None;
    }
    let swtpm = Swtpm::start();
    let secret = swtpm.dir().join("secret.hex");
    std::fs::write(&secret, SECRET).unwrap();
    Some((swtpm, secret))
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

/// A label carrying terminal escapes, a carriage return or a right-to-left override never reaches
/// root's terminal: it is not copied into the driver's file, and `status` does not print one that
/// was written there by hand.
#[test]
fn hostile_labels_stay_off_roots_terminal() {
    let Some((swtpm, secret)) = as_root_with_secret() else { return };
    ok(&swtpm, &["import", "--secret-file", secret.to_str().unwrap(), "--handle", "0x81000100"]);
    let hostile = "\u{1b}[2Jroot\rowned\u{202E}";
    let metadata = swtpm.dir().join("keys.json");
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&metadata).unwrap()).unwrap();
    file["keys"]["0x81000100"]["label"] = hostile.into();
    std::fs::write(&metadata, file.to_string()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pcsc.json");
    let config_arg = config.to_str().unwrap();

    let out = ok(&swtpm, &["pcsc", "enable", "--handle", "0x81000100", "--config", config_arg]);
    assert!(stderr(&out).contains("label is not copied"), "{}", stderr(&out));
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(!written.contains("owned") && !written.contains("\\u001b"), "{written}");

    // Root edits the driver's file by hand: status still shows no such label.
    let mut edited: Value = serde_json::from_str(&written).unwrap();
    edited["keys"]["0x81000100"]["label"] = hostile.into();
    std::fs::write(&config, edited.to_string()).unwrap();
    let out = ok(&swtpm, &["pcsc", "status", "--config", config_arg]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("0x81000100"), "{shown}");
    assert!(!shown.contains(['\u{1b}', '\r', '\u{202E}']) && !shown.contains("owned"), "{shown:?}");
    let json = status(&swtpm, &config);
    assert!(json["served"][0].get("label").is_none(), "{json}");
}

/// Under sudo, `tpm-hmac pcsc` lends root's rights to no file but the driver's own: --config only
/// in /etc/keepassxc-tpm/, and a --metadata file read with the rights of the user who ran sudo, so
/// its errors say only what that user could find out anyway.
#[test]
fn under_sudo_root_files_stay_roots() {
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIP: needs root and setpriv");
        return;
    }
    let swtpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("pcsc.json");
    for args in [
        vec!["pcsc", "enable", "--handle", "0x81000100", "--config", elsewhere.to_str().unwrap()],
        vec!["pcsc", "status", "--config", "/etc/shadow"],
        vec!["pcsc", "disable", "--handle", "0x81000100", "--config", "/etc/keepassxc-tpm/../shadow"],
    ] {
        let out = under_sudo(&swtpm, &args);
        assert!(!out.status.success(), "{args:?}");
        let said = stderr(&out);
        assert!(said.contains("must name a file in /etc/keepassxc-tpm/"), "{args:?}: {said}");
        assert_eq!(said.lines().count(), 1, "{said}");
    }
    assert!(!elsewhere.exists(), "nothing written outside /etc/keepassxc-tpm");

    // A directory only root may enter: a file there and a missing one look the same to nobody.
    use std::os::unix::fs::PermissionsExt;
    let private = dir.path().join("root-only");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(private.join("keys.json"), "{\"keys\":{}}").unwrap();
    let mut said = Vec::new();
    for name in ["keys.json", "missing.json"] {
        let metadata = private.join(name);
        let args = ["pcsc", "enable", "--handle", "0x81000100", "--metadata", metadata.to_str().unwrap()];
        let out = under_sudo(&swtpm, &args);
        assert!(!out.status.success(), "{name}");
        let text = stderr(&out).replace(name, "FILE");
        assert!(text.contains("nobody cannot read it") && text.contains("Permission denied"), "{text}");
        said.push(text);
    }
    assert_eq!(said[0], said[1], "the errors do not tell whether the file exists");
}

/// Each key keeps its slot (the reader name a polkit rule names) when another is disabled; the
/// users named with --user are kept per key, and a name that is not a user of this system, or
/// could not go into the rule as it is, is refused before anything is written.
#[test]
fn slots_and_users_stay_with_their_keys() {
    let Some((swtpm, secret)) = as_root_with_secret() else { return };
    for handle in ["0x81000100", "0x81000101", "0x81000102"] {
        ok(&swtpm, &["import", "--secret-file", secret.to_str().unwrap(), "--handle", handle]);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("etc/pcsc.json");
    let config_arg = config.to_str().unwrap();
    for bad in ["no-such-user-here", "a\"b", "root", "x);polkit"] {
        let out =
            tpm_hmac(&swtpm, &["pcsc", "enable", "--handle", "0x81000100", "--user", bad, "--config", config_arg]);
        assert!(!out.status.success(), "--user {bad}");
        assert!(stderr(&out).starts_with(&format!("tpm-hmac: --user {bad}: ")), "{}", stderr(&out));
        assert!(!config.exists(), "nothing written for --user {bad}");
    }
    for (handle, user) in [("0x81000102", "nobody"), ("0x81000100", "daemon"), ("0x81000101", "bin")] {
        ok(&swtpm, &["pcsc", "enable", "--handle", handle, "--user", user, "--config", config_arg]);
    }
    let readers = |status: &Value| -> Vec<(String, String, String)> {
        status["served"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                let users = k["users"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect::<Vec<_>>();
                (k["handle"].as_str().unwrap().into(), k["reader"].as_str().unwrap().into(), users.join(","))
            })
            .collect()
    };
    let entry = |h: &str, slot: &str, u: &str| (h.to_owned(), format!("KeePassXC TPM 00 {slot}"), u.to_owned());
    assert_eq!(
        readers(&status(&swtpm, &config)),
        [entry("0x81000102", "00", "nobody"), entry("0x81000100", "01", "daemon"), entry("0x81000101", "02", "bin")]
    );
    ok(&swtpm, &["pcsc", "disable", "--handle", "0x81000102", "--config", config_arg]);
    assert_eq!(
        readers(&status(&swtpm, &config)),
        [entry("0x81000100", "01", "daemon"), entry("0x81000101", "02", "bin")],
        "the other keys keep their slots"
    );
    ok(
        &swtpm,
        &["pcsc", "enable", "--handle", "0x81000101", "--user", "nobody", "--user", "daemon", "--config", config_arg],
    );
    ok(&swtpm, &["pcsc", "enable", "--handle", "0x81000102", "--user", "bin", "--config", config_arg]);
    assert_eq!(
        readers(&status(&swtpm, &config)),
        [
            entry("0x81000102", "00", "bin"),
            entry("0x81000100", "01", "daemon"),
            entry("0x81000101", "02", "daemon,nobody")
        ],
        "enabled again: the same slot, the new users; a new key takes the free slot"
    );
}

/// A key file is enabled by its file (`--key-file`) or its serial: its record, wrapped key
/// included, goes into the driver's file, so the driver needs nothing of the user's.
#[test]
fn a_key_file_is_enabled_with_its_wrapped_key() {
    let Some((swtpm, secret)) = as_root_with_secret() else { return };
    let key_file = swtpm.dir().join("k.tss");
    let made: Value = serde_json::from_slice(
        &ok(
            &swtpm,
            &["import", "--secret-file", secret.to_str().unwrap(), "--key-file", key_file.to_str().unwrap(), "--json"],
        )
        .stdout,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("etc/pcsc.json");
    let config_arg = config.to_str().unwrap();
    ok(&swtpm, &["pcsc", "enable", "--key-file", key_file.to_str().unwrap(), "--config", config_arg]);
    let served = &status(&swtpm, &config)["served"][0];
    assert_eq!(served["handle"], made["handle"]);
    assert_eq!(served["keepassxc"], format!("1:{}", made["serial"]));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\"key_private\""), "the wrapped key is in the driver's file");
    ok(&swtpm, &["pcsc", "disable", "--handle", made["handle"].as_str().unwrap(), "--config", config_arg]);
    ok(&swtpm, &["pcsc", "enable", "--handle", made["handle"].as_str().unwrap(), "--config", config_arg]);
    assert_eq!(status(&swtpm, &config)["served"][0]["handle"], made["handle"]);
}
