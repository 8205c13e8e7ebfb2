//! `tpm-hmac` as a user runs it, against a private swtpm: output formats, responses, the TPM
//! commands one challenge costs, and one clear line on stderr for every failure.
#![cfg(unix)]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use swtpm_fixture::commands::{HMAC, READ_PUBLIC, START_AUTH_SESSION};
use swtpm_fixture::{persist_srk, transient_objects, CommandLog, Swtpm};

use swtpm_fixture::yubikey::{hmac_sha1, yubikey_hmac, YUBIKEY_SECRET as SECRET};

fn tpm_hmac(tcti: &str, args: &[&str]) -> Output {
    // The test's own metadata file (the per-user default must not be touched by tests).
    common::tpm_hmac(tcti, &metadata_path(tcti)).args(args).env_remove("TSS2_LOG").output().expect("run tpm-hmac")
}

/// One file per TPM and test run: a record left by an earlier run for a TPM on the same port
/// would name another key, which is an error.
fn metadata_path(tcti: &str) -> std::path::PathBuf {
    let name = format!("tpm-hmac-test-{}-{}.json", std::process::id(), tcti.replace([':', ',', '=', '/'], "_"));
    std::env::temp_dir().join(name)
}

/// tpm-hmac (its arguments to be added) in a mount namespace of its own, after the shell line
/// `setup` ran there; `None`, and a SKIP, without root or unshare.
fn tpm_hmac_in_mount_namespace(setup: &str) -> Option<Command> {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root || Command::new("unshare").arg("--version").output().is_err() {
        eprintln!("SKIP: needs root and unshare for a private mount namespace");
        return None;
    }
    let mut command = Command::new("unshare");
    command
        .args(["-m", "--propagation", "private", "sh", "-c", &format!("{setup} && exec \"$@\""), "sh"])
        .arg(env!("CARGO_BIN_EXE_tpm-hmac"));
    Some(command)
}

fn ok(tcti: &str, args: &[&str]) -> String {
    let out = tpm_hmac(tcti, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail, and returns its single stderr line.
fn fails(tcti: &str, args: &[&str]) -> String {
    let out = tpm_hmac(tcti, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} should fail");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: one line on stderr, got:\n{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("ERROR:esys"), "{stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    stderr
}

fn secret_file(swtpm: &Swtpm, hex: &str) -> String {
    let path = swtpm.dir().join("secret.hex");
    std::fs::write(&path, hex).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn list_create_import_challenge_info_delete() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    assert_eq!(serde_json::from_str::<Value>(&ok(&tcti, &["list", "--json"])).unwrap(), Value::Array(vec![]));

    assert_eq!(ok(&tcti, &["create"]).trim(), "0x81000100");
    let imported: Value =
        serde_json::from_str(&ok(&tcti, &["import", "--secret-file", &secret_file(&swtpm, SECRET), "--json"])).unwrap();
    assert_eq!(imported["handle"], "0x81000101");
    assert_eq!(imported["serial"], 0x8100_0101u32);
    assert_eq!(imported["slot"], 1);
    assert_eq!(imported["algorithm"], "sha1");

    let listed: Value = serde_json::from_str(&ok(&tcti, &["list", "--json"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], imported, "create/import print the same object as list");
    assert_eq!(listed[0]["origin"], "generated");

    let challenge = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let response = ok(&tcti, &["challenge", "--handle", "0x81000101", "--hex", challenge]);
    let expected = yubikey_hmac(&hex::decode(challenge).unwrap());
    assert_eq!(response.trim(), hex::encode(expected), "lowercase hex HMAC-SHA1");
    // The decimal serial KeePassXC shows works as a handle too.
    assert_eq!(ok(&tcti, &["challenge", "--handle", "2164261121", "--hex", challenge]), response);

    let info: Value = serde_json::from_str(&ok(&tcti, &["info", "--handle", "0x81000101", "--json"])).unwrap();
    assert_eq!(info, imported);
    ok(&tcti, &["delete", "--handle", "0x81000100"]);
    let listed: Value = serde_json::from_str(&ok(&tcti, &["list", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn tpm_commands_of_one_challenge_process() {
    let swtpm = Swtpm::start();
    let proxy = CommandLog::start(swtpm.port());
    // Through the proxy from the start, so the key's pin and the challenge use one metadata file.
    ok(&proxy.tcti(), &["import", "--secret-file", &secret_file(&swtpm, SECRET)]);
    proxy.clear();
    let encrypted = ok(&proxy.tcti(), &["challenge", "--handle", "0x81000100", "--hex", "00"]);
    assert_eq!(
        proxy.commands(),
        vec![READ_PUBLIC, START_AUTH_SESSION, HMAC],
        "the key's name, StartAuthSession, HMAC (which ends the session: nothing to flush); the SRK comes from the record"
    );
    let sessions = swtpm_fixture::tpm2(&swtpm.tcti(), &["tpm2_getcap", "handles-loaded-session"]);
    assert!(!sessions.contains("0x"), "the process left no session in the TPM: {sessions}");
    assert_eq!(transient_objects(&swtpm.tcti()), 0);
    proxy.clear();
    let clear = ok(&proxy.tcti(), &["--no-bus-encryption", "challenge", "--handle", "0x81000100", "--hex", "00"]);
    assert_eq!(
        proxy.commands(),
        vec![READ_PUBLIC, START_AUTH_SESSION, HMAC],
        "without encryption: ReadPublic, an unsalted policy session (the key's empty policy), HMAC"
    );
    assert_eq!(encrypted, clear);
}

/// A host name whose first address is ::1 while the simulator listens on 127.0.0.1 only (as
/// `localhost` may be): each address is tried in turn, as tpm2-tss does, and the challenge still
/// takes the direct path. (/etc/hosts is replaced in a mount namespace of the command's own.)
#[test]
fn each_address_of_a_tpm_host_name_is_tried() {
    let swtpm = Swtpm::start();
    let proxy = CommandLog::start(swtpm.port());
    let tcti = proxy.tcti();
    ok(&tcti, &["import", "--secret-file", &secret_file(&swtpm, SECRET)]);
    let expected = ok(&tcti, &["challenge", "--handle", "0x81000100", "--hex", "00"]);
    let hosts = swtpm.dir().join("hosts");
    std::fs::write(&hosts, "::1 tpm-host\n127.0.0.1 tpm-host\n").unwrap();
    let Some(mut in_namespace) = tpm_hmac_in_mount_namespace(&format!("mount --bind '{}' /etc/hosts", hosts.display()))
    else {
        return;
    };
    proxy.clear();
    let out = in_namespace
        .args(["--tcti", &tcti.replace("127.0.0.1", "tpm-host"), "challenge", "--handle", "0x81000100", "--hex", "00"])
        .env("KEEPASSXC_TPM_METADATA", metadata_path(&tcti))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert_eq!(proxy.commands(), vec![READ_PUBLIC, START_AUTH_SESSION, HMAC], "the direct path reached it");
}

/// Every flag the README and `--help` document, run as a user would.
#[test]
fn every_documented_flag_works() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    let json = |out: String| serde_json::from_str::<Value>(&out).unwrap();

    // create: --handle, --algorithm, --pcrs, --json
    let bound =
        json(ok(&tcti, &["create", "--handle", "0x81000150", "--algorithm", "sha256", "--pcrs", "16", "--json"]));
    assert_eq!(
        (bound["handle"].as_str(), bound["algorithm"].as_str(), bound["pcr_bound"].as_bool()),
        (Some("0x81000150"), Some("sha256"), Some(true))
    );
    assert_eq!(
        ok(&tcti, &["challenge", "--handle", "0x81000150", "--hex", "01"]).trim().len(),
        64,
        "SHA-256: 32 bytes"
    );
    assert!(ok(&tcti, &["info", "--handle", "0x81000150"]).contains("boot state"));
    swtpm_fixture::tpm2(&tcti, &["tpm2_pcrextend", &format!("16:sha256={}", "ab".repeat(32))]);
    assert!(fails(&tcti, &["challenge", "--handle", "0x81000150", "--hex", "01"])
        .contains("boot state (PCR values) changed"));
    swtpm_fixture::tpm2(&tcti, &["tpm2_pcrreset", "16"]);

    // import: --secret-file FILE and - (stdin), --pcrs with a list, --pin-file
    let bound = json(ok(&tcti, &["import", "--secret-file", &secret_file(&swtpm, SECRET), "--pcrs", "7,16", "--json"]));
    assert_eq!(bound["pcr_bound"], true);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tpm-hmac"))
        .args(["--tcti", &tcti, "import", "--secret-file", "-", "--json"])
        .env("KEEPASSXC_TPM_METADATA", metadata_path(&tcti))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(format!("{SECRET}\n").as_bytes()).unwrap();
    let piped = child.wait_with_output().unwrap();
    assert!(piped.status.success());
    let piped = json(String::from_utf8(piped.stdout).unwrap());
    let pin = swtpm.dir().join("pin");
    std::fs::write(&pin, "9876\n").unwrap();
    let with_pin = json(ok(
        &tcti,
        &["import", "--secret-file", &secret_file(&swtpm, SECRET), "--pin-file", pin.to_str().unwrap(), "--json"],
    ));
    assert_eq!(with_pin["no_da"], false);
    let (h1, h2) = (piped["handle"].as_str().unwrap(), with_pin["handle"].as_str().unwrap());
    assert_eq!(
        ok(&tcti, &["challenge", "--handle", h1, "--hex", "02"]),
        ok(&tcti, &["challenge", "--handle", h2, "--hex", "02", "--pin-file", pin.to_str().unwrap()]),
        "the same secret, with and without a PIN"
    );
    // A twin of a slot programmed for fixed 64-byte challenges.
    let fixed = json(ok(
        &tcti,
        &["import", "--secret-file", &secret_file(&swtpm, SECRET), "--yubikey-mode", "fixed", "--json"],
    ));
    let fixed = fixed["handle"].as_str().unwrap().to_owned();
    assert!(ok(&tcti, &["info", "--handle", &fixed]).contains("fixed 64-byte challenges"));
    let seed = [[7u8; 30].as_slice(), &[0x20, 0x20]].concat();
    let mut block = seed.clone();
    block.resize(64, 32);
    assert_eq!(
        ok(&tcti, &["challenge", "--handle", &fixed, "--hex", &hex::encode(&seed)]).trim(),
        hex::encode(yubikey_hmac(&block))
    );
    assert!(tpm_hmac(&tcti, &["create", "--yubikey-mode", "sometimes"]).status.code() == Some(2));
    // calculate is challenge's alias; --no-bus-encryption works for keys without a PIN only.
    assert_eq!(
        ok(&tcti, &["--no-bus-encryption", "calculate", "--handle", h1, "--hex", "02"]),
        ok(&tcti, &["challenge", "--handle", h1, "--hex", "02"])
    );
    let line = fails(
        &tcti,
        &["--no-bus-encryption", "challenge", "--handle", h2, "--hex", "02", "--pin-file", pin.to_str().unwrap()],
    );
    assert!(line.contains("in clear") && line.contains("leave out --no-bus-encryption"), "{line}");
    // --recovery with --json, list without --json, info --json, delete.
    let recovered = tpm_hmac(&tcti, &["create", "--recovery", "--json"]);
    assert!(recovered.status.success() && String::from_utf8_lossy(&recovered.stderr).contains("recovery code:"));
    let listed = ok(&tcti, &["list"]);
    assert_eq!(listed.lines().count(), 6, "{listed}");
    assert!(listed.contains("--yubikey 1:2164261200"), "{listed}");
    assert_eq!(json(ok(&tcti, &["info", "--handle", h1, "--json"]))["handle"], h1);
    ok(&tcti, &["delete", "--handle", h1]);
    assert!(fails(&tcti, &["info", "--handle", h1]).contains("no key at"));
}

#[test]
fn delete_says_when_the_record_stays_behind() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    ok(&tcti, &["create", "--handle", "0x81000100"]);
    // The metadata file can no longer be written (a directory stands where it was)
    let path = metadata_path(&tcti);
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let out = tpm_hmac(&tcti, &["delete", "--handle", "0x81000100"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the key is deleted all the same: {stderr}");
    assert!(stderr.contains("Deleted the key at 0x81000100"), "{stderr}");
    assert!(
        stderr.contains("warning: the key's record could not be removed") && stderr.contains(path.to_str().unwrap()),
        "{stderr}"
    );
    assert!(!ok(&tcti, &["list"]).contains("0x81000100"), "gone from the TPM");
    std::fs::remove_dir(&path).unwrap();
}

#[test]
fn labels_name_keys_in_list_info_json_and_keepassxc() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    let json = |out: String| serde_json::from_str::<Value>(&out).unwrap();
    let made = json(ok(&tcti, &["create", "--label", "laptop", "--json"]));
    assert_eq!(
        (made["label"].as_str(), made["display_name"].as_str()),
        (Some("laptop"), Some("TPM 2.0 HMAC-SHA1 laptop"))
    );
    assert!(ok(&tcti, &["list"]).lines().next().unwrap().ends_with("laptop"));
    ok(&tcti, &["label", "--handle", "0x81000100", "work PC"]);
    assert!(ok(&tcti, &["info", "--handle", "0x81000100"]).contains("Label:         work PC"));
    assert_eq!(json(ok(&tcti, &["list", "--json"]))[0]["label"], "work PC");
    for bad in ["a[b]", "line\nbreak"] {
        let line = fails(&tcti, &["label", "--handle", "0x81000100", bad]);
        assert!(line.contains("bad label"), "{line}");
    }
    assert!(fails(&tcti, &["create", "--label", "[x]"]).contains("bad label"), "refused before anything is made");
    assert_eq!(json(ok(&tcti, &["list", "--json"])).as_array().unwrap().len(), 1);
    ok(&tcti, &["label", "--handle", "0x81000100", "--clear"]);
    assert_eq!(json(ok(&tcti, &["list", "--json"]))[0].get("label"), None);
    // A lost metadata file only loses the label.
    ok(&tcti, &["label", "--handle", "0x81000100", "laptop"]);
    std::fs::remove_file(metadata_path(&tcti)).unwrap();
    let listed = json(ok(&tcti, &["list", "--json"]));
    assert_eq!(
        (listed[0].get("label"), listed[0]["display_name"].as_str()),
        (None, Some("TPM 2.0 HMAC-SHA1 0x81000100"))
    );
    ok(&tcti, &["challenge", "--handle", "0x81000100", "--hex", "00"]);
}

#[test]
fn a_hostile_label_in_the_file_never_reaches_the_terminal() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    ok(&tcti, &["create", "--label", "laptop"]);
    let path = metadata_path(&tcti);
    // Written by hand into the file: escape sequences, a line break, a right-to-left override.
    for hostile in ["\u{1b}]0;pwned\u{7}\u{1b}[2J", "a\nb", "evil\u{202E}txt.exe", "x\u{2028}y", " padded "] {
        let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        file["keys"]["0x81000100"]["label"] = hostile.into();
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        for args in [&["list"][..], &["list", "--json"], &["info", "--handle", "0x81000100"]] {
            let out = ok(&tcti, args);
            assert!(!out.contains(hostile.trim()), "{args:?} shows {hostile:?}: {out:?}");
            assert!(!out.contains('\u{1b}') && !out.contains('\u{202E}') && !out.contains('\u{2028}'), "{out:?}");
        }
        let listed: Value = serde_json::from_str(&ok(&tcti, &["list", "--json"])).unwrap();
        assert_eq!(listed[0]["display_name"], "TPM 2.0 HMAC-SHA1 0x81000100", "dropped as a lost file drops it");
    }
}

#[test]
fn every_failure_is_one_line_with_a_remedy() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    persist_srk(&tcti, swtpm.dir());
    ok(&tcti, &["import", "--secret-file", &secret_file(&swtpm, SECRET)]);
    let before = ok(&tcti, &["challenge", "--handle", "0x81000100", "--hex", "aa"]);

    let too_long = "00".repeat(65);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["challenge", "--handle", "0x81000001", "--hex", "00"], "storage key, probably the SRK, not an HMAC key"),
        (vec!["challenge", "--handle", "0x81000123", "--hex", "00"], "no key at 0x81000123"),
        (vec!["challenge", "--handle", "0x81000100", "--hex", &too_long], "at most 64"),
        (vec!["challenge", "--handle", "0x81000100", "--hex", "xyz"], "not hex"),
        (vec!["create", "--handle", "0x81000100"], "already holds an HMAC-SHA1 key"),
        (vec!["create", "--handle", "0x81000001"], "probably the SRK"),
        (vec!["import", "--secret-file", "/nonexistent/secret"], "cannot read"),
        (vec!["delete", "--handle", "0x81000001"], "not an HMAC key"),
        (vec!["info", "--handle", "0x81000001"], "not an HMAC key"),
    ];
    for (args, needle) in &cases {
        let line = fails(&tcti, args);
        assert!(line.contains(needle), "{args:?}: {line}");
    }
    let odd = secret_file(&swtpm, "abc");
    assert!(fails(&tcti, &["import", "--secret-file", &odd]).contains("odd number"));
    let short = secret_file(&swtpm, "0102");
    assert!(fails(&tcti, &["import", "--secret-file", &short]).contains("exactly 20 bytes"));

    // Nothing was lost or left loaded by the failures.
    assert_eq!(ok(&tcti, &["challenge", "--handle", "0x81000100", "--hex", "aa"]), before);
    assert_eq!(transient_objects(&tcti), 0);
}

#[test]
fn usage_errors_and_unreachable_tpms_fail_fast() {
    let mut swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    swtpm.stop();
    let started = Instant::now();
    let line = fails(&tcti, &["list"]);
    assert!(line.contains("no TPM reachable") && line.contains("0x000A000A"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(5), "an unreachable TPM fails within seconds");
    assert!(fails("bogus:thing", &["list"]).contains("unknown TCTI"));
    // tss-esapi drops options it does not know: this would have opened swtpm on localhost:2321
    assert!(fails("swtpm:path=/run/swtpm/tpm.sock", &["list"]).contains("the option \"path=/run/swtpm/tpm.sock\""));
    assert!(fails("device:/nonexistent/tpm", &["list"]).contains("does not exist"));
    let out = tpm_hmac(&tcti, &["challenge", "--handle", "0x1234", "--hex", "00"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 0x81000000 and 0x817FFFFF"));
}

#[test]
fn permission_denied_names_the_group() {
    let Some((_dir, device)) = swtpm_fixture::unopenable_device() else { return };
    let out = swtpm_fixture::as_nobody(env!("CARGO_BIN_EXE_tpm-hmac"))
        .arg("--tcti")
        .arg(format!("device:{}", device.display()))
        .arg("list")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("permission denied") && stderr.contains("\"root\" group"), "{stderr}");
}

#[test]
fn help_has_examples() {
    let out = Command::new(env!("CARGO_BIN_EXE_tpm-hmac")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:") && help.contains("--yubikey 1:"), "{help}");
    for sub in ["list", "create", "import", "challenge", "info", "delete"] {
        assert!(help.contains(sub), "{sub}");
    }
}

#[test]
fn recovery_survives_a_tpm_clear() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    let out = tpm_hmac(&tcti, &["create", "--recovery"]);
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stderr).into_owned();
    let field = |name: &str| {
        let line = shown.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_else(|| panic!("{shown}"));
        line.split_whitespace().last().unwrap().to_owned()
    };
    let (code, hex) = (field("recovery code:"), field("hex:"));
    // yubikey-manager 5's syntax: `ykman otp chalresp [-t] {1|2} KEY` (--touch is a flag).
    assert!(shown.contains("`ykman otp chalresp 2 <hex>`") && !shown.contains("--touch="), "{shown}");
    assert_eq!(code.split('-').count(), 9);
    assert_eq!(hex.len(), 40);
    let seed = "8f".repeat(32);
    let before = ok(&tcti, &["challenge", "--handle", "0x81000100", "--hex", &seed]);
    let expected = hmac_sha1(&hex::decode(&hex).unwrap(), &hex::decode(&seed).unwrap());
    assert_eq!(before.trim(), hex::encode(expected), "the shown secret is the key's");

    // The TPM is reset: every key is gone.
    swtpm_fixture::tpm2(&tcti, &["tpm2_clear", "-c", "p"]);
    assert!(fails(&tcti, &["challenge", "--handle", "0x81000100", "--hex", &seed]).contains("no key at"));
    // Restored from the recovery code (typed in lower case with spaces), it answers as before.
    let typed = code.to_lowercase().replace('-', " ");
    ok(&tcti, &["import", "--secret-file", &secret_file(&swtpm, &typed)]);
    assert_eq!(ok(&tcti, &["challenge", "--handle", "0x81000100", "--hex", &seed]), before);
    // A typo is refused rather than making a different key.
    let mut typo = code.clone().into_bytes();
    typo[0] = if typo[0] == b'7' { b'8' } else { b'7' };
    let line = fails(&tcti, &["import", "--secret-file", &secret_file(&swtpm, &String::from_utf8(typo).unwrap())]);
    assert!(line.contains("checksum"), "{line}");
}

#[test]
fn create_recovery_sends_its_secret_encrypted() {
    let swtpm = Swtpm::start();
    let proxy = CommandLog::start(swtpm.port());
    let out = tpm_hmac(&proxy.tcti(), &["create", "--recovery"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8_lossy(&out.stderr).into_owned();
    let hex = shown.lines().find_map(|l| l.trim_start().strip_prefix("hex:")).expect("hex shown").trim().to_owned();
    let secret = hex::decode(&hex).unwrap();
    let (to_tpm, from_tpm) = proxy.traffic();
    assert!(to_tpm.len() > 500, "control: the capture saw the provisioning");
    for window in secret.windows(8) {
        let seen = |bytes: &[u8]| bytes.windows(8).any(|w| w == window);
        assert!(!seen(&to_tpm) && !seen(&from_tpm), "part of the recovery secret crossed the bus in clear");
    }
}

#[test]
fn a_record_that_cannot_be_kept_stops_create_before_the_tpm() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    for path in ["/dev/null", "/proc/version"] {
        let out = Command::new(env!("CARGO_BIN_EXE_tpm-hmac"))
            .args(["--tcti", &tcti, "create"])
            .env("KEEPASSXC_TPM_METADATA", path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{path}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(path) && stderr.contains("metadata file"), "{stderr}");
    }
    assert_eq!(serde_json::from_str::<Value>(&ok(&tcti, &["list", "--json"])).unwrap(), Value::Array(vec![]));
}

#[test]
fn a_frozen_tpm_ends_in_an_error_not_a_hang() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    ok(&tcti, &["import", "--secret-file", &secret_file(&swtpm, SECRET)]);
    swtpm.freeze();
    let started = Instant::now();
    let line = fails(&tcti, &["challenge", "--handle", "0x81000100", "--hex", "00"]);
    let waited = started.elapsed();
    swtpm.thaw();
    assert!(line.contains("did not answer within 10 s"), "{line}");
    assert!(waited >= Duration::from_secs(9) && waited < Duration::from_secs(15), "{waited:?}");
    ok(&tcti, &["challenge", "--handle", "0x81000100", "--hex", "00"]);
}

#[test]
fn pin_from_a_file_and_a_wrong_pin_says_how_many_tries_are_left() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    let pin = swtpm.dir().join("pin");
    std::fs::write(&pin, "correct horse\n").unwrap();
    let wrong = swtpm.dir().join("wrong");
    std::fs::write(&wrong, "battery staple\n").unwrap();
    let created: Value =
        serde_json::from_str(&ok(&tcti, &["create", "--pin-file", pin.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(created["no_da"], false);
    let handle = created["handle"].as_str().unwrap().to_owned();
    ok(&tcti, &["challenge", "--handle", &handle, "--hex", "01", "--pin-file", pin.to_str().unwrap()]);
    let line = fails(&tcti, &["challenge", "--handle", &handle, "--hex", "01", "--pin-file", wrong.to_str().unwrap()]);
    assert!(line.contains("wrong PIN") && line.contains("tries left"), "{line}");
}

#[test]
fn secrets_come_from_the_kernels_generator_not_a_device_file() {
    // /dev/urandom replaced by /dev/null in a mount namespace of its own: a program that reads the
    // device gets no bytes; getrandom(2), the one source the core uses, still answers.
    let Some(mut in_namespace) = tpm_hmac_in_mount_namespace("mount --bind /dev/null /dev/urandom") else { return };
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    let out = in_namespace
        .args(["--tcti", &tcti, "create", "--recovery", "--json"])
        .env("KEEPASSXC_TPM_METADATA", metadata_path(&tcti))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("recovery code:"), "{stderr}");
    let listed: Value = serde_json::from_str(&ok(&tcti, &["list", "--json"])).unwrap();
    assert_eq!(listed[0]["origin"], "imported", "the recovery key was made");
}

/// A reader that closes the pipe early (`tpm-hmac list | head -1`, `grep -q`) ends tpm-hmac
/// quietly, as SIGPIPE would (status 141): no panic, no message.
#[test]
fn a_closed_pipe_is_no_panic() {
    let swtpm = Swtpm::start();
    ok(&swtpm.tcti(), &["import", "--secret-file", &secret_file(&swtpm, SECRET)]);
    let mut child = common::tpm_hmac(&swtpm.tcti(), &metadata_path(&swtpm.tcti()))
        .arg("list")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}
