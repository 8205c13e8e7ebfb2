//! `--key-file` (issue 31): a key kept in a TSS2 PRIVATE KEY file, as a user runs the CLI. It is
//! made, listed, challenged, labelled and deleted like a persistent key, takes no persistent
//! handle, answers like its YubiKey twin; every hostile file is refused in one line, with nothing
//! sent that could count against a PIN and no panic.
#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use swtpm_fixture::yubikey::{reference_message, yubikey_hmac, YUBIKEY_SECRET};
use swtpm_fixture::{persist_srk, tpm2, Swtpm};

fn tpm_hmac(swtpm: &Swtpm, args: &[&str]) -> Output {
    let mut command = common::tpm_hmac(&swtpm.tcti(), &swtpm.dir().join("keys.json"));
    command.args(args).env("TSS2_LOG", "all+none").output().expect("run tpm-hmac")
}

fn ok(swtpm: &Swtpm, args: &[&str]) -> String {
    let out = tpm_hmac(swtpm, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The one-line error of a command that must fail.
fn refused(swtpm: &Swtpm, args: &[&str]) -> String {
    let out = tpm_hmac(swtpm, args);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
    assert!(!said.contains("panicked"), "{said}");
    assert_eq!(said.trim_end().lines().count(), 1, "one line: {said}");
    said
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_key_file_is_used_like_a_persistent_key_and_takes_no_handle() {
    let swtpm = Swtpm::start();
    persist_srk(&swtpm.tcti(), swtpm.dir());
    let persistent = || tpm2(&swtpm.tcti(), &["tpm2_getcap", "handles-persistent"]);
    let before = persistent();
    let secret = swtpm.dir().join("secret.hex");
    std::fs::write(&secret, YUBIKEY_SECRET).unwrap();
    let file = swtpm.dir().join("twin.tss");
    let made: Value = serde_json::from_str(&ok(
        &swtpm,
        &["import", "--secret-file", path(&secret), "--key-file", path(&file), "--label", "twin", "--json"],
    ))
    .unwrap();
    assert_eq!(made["kept_in"], "file");
    let serial = made["serial"].as_u64().unwrap();
    assert_eq!(serial >> 24, 0x82, "a key file's serial: {serial:#x}");
    assert_eq!(persistent(), before, "no persistent handle taken");
    assert!(std::fs::read_to_string(&file).unwrap().starts_with("-----BEGIN TSS2 PRIVATE KEY-----"));

    let challenge = "0102030405";
    let expected = hex::encode(yubikey_hmac(&reference_message(&hex::decode(challenge).unwrap())));
    assert_eq!(ok(&swtpm, &["challenge", "--key-file", path(&file), "--hex", challenge]).trim(), expected);
    let handle = made["handle"].as_str().unwrap();
    assert_eq!(ok(&swtpm, &["challenge", "--handle", handle, "--hex", challenge]).trim(), expected);
    assert_eq!(ok(&swtpm, &["challenge", "--handle", &serial.to_string(), "--hex", challenge]).trim(), expected);

    let listed = ok(&swtpm, &["list"]);
    assert!(listed.lines().any(|l| l.starts_with(handle) && l.contains("key file") && l.ends_with("twin")), "{listed}");
    assert!(ok(&swtpm, &["info", "--key-file", path(&file)]).contains(handle));
    ok(&swtpm, &["label", "--key-file", path(&file), "renamed"]);
    assert!(ok(&swtpm, &["list"]).contains("renamed"));

    ok(&swtpm, &["delete", "--key-file", path(&file)]);
    assert!(!file.exists(), "the file goes with its record");
    assert!(!ok(&swtpm, &["list", "--json"]).contains(handle));
    assert!(refused(&swtpm, &["challenge", "--handle", handle]).starts_with("tpm-hmac: "));
}

#[test]
fn hostile_key_files_are_refused_in_one_line() {
    let swtpm = Swtpm::start();
    let good = swtpm.dir().join("good.tss");
    ok(&swtpm, &["create", "--key-file", path(&good)]);
    let text = std::fs::read_to_string(&good).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    };
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (write("empty.tss", b""), "not a TSS2 PRIVATE KEY"),
        (write("json.tss", b"{\"keys\": {}}"), "not a TSS2 PRIVATE KEY"),
        (write("cut.tss", &text.as_bytes()[..text.len() / 2]), "not a TSS2 PRIVATE KEY"),
        (
            write("other.tss", text.replace("TSS2 PRIVATE KEY", "PRIVATE KEY").as_bytes()),
            "its label is \"PRIVATE KEY\"",
        ),
        (write("huge.tss", &vec![b'A'; 20_000]), "more than"),
        (write("garbage.tss", b"-----BEGIN TSS2 PRIVATE KEY-----\nAAAA\n-----END TSS2 PRIVATE KEY-----\n"), "damaged"),
    ];
    for (file, why) in &cases {
        let said = refused(&swtpm, &["challenge", "--key-file", path(file), "--hex", "00"]);
        assert!(said.contains(why) && said.contains(path(file)), "{}: {said}", file.display());
    }
    let link = dir.path().join("link.tss");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    assert!(refused(&swtpm, &["challenge", "--key-file", path(&link)]).contains("symbolic link"));
    use std::os::unix::fs::PermissionsExt;
    let shared = write("shared.tss", text.as_bytes());
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(refused(&swtpm, &["challenge", "--key-file", path(&shared)]).contains("writable by group or others"));
    // A valid file without a record here (another user's, or made elsewhere) is not used.
    let unrecorded = write("unrecorded.tss", text.as_bytes());
    std::fs::remove_file(swtpm.dir().join("keys.json")).unwrap();
    assert!(refused(&swtpm, &["challenge", "--key-file", path(&unrecorded)]).contains("no record of this key"));
    // Never over an existing file.
    assert!(refused(&swtpm, &["create", "--key-file", path(&good)]).contains("exists already"));
}

/// The file and its record taken to another TPM: the TPM refuses to load the wrapped key (it is
/// bound to the first TPM's storage key), before any authorisation.
#[test]
fn a_key_file_of_another_tpm_does_not_load() {
    let (first, second) = (Swtpm::start(), Swtpm::start());
    let file = first.dir().join("k.tss");
    ok(&first, &["create", "--key-file", path(&file)]);
    std::fs::copy(first.dir().join("keys.json"), second.dir().join("keys.json")).unwrap();
    let said = refused(&second, &["challenge", "--key-file", path(&file), "--hex", "00"]);
    assert!(said.contains("loading the key file"), "{said}");
    // doctor names it, on each TPM.
    let doctor = |swtpm: &Swtpm| String::from_utf8(tpm_hmac(swtpm, &["doctor"]).stdout).unwrap();
    let here = doctor(&first);
    assert!(here.lines().any(|l| l.starts_with("ok") && l.contains("key-file") && l.contains("loads")), "{here}");
    let there = doctor(&second);
    assert!(there.lines().any(|l| l.starts_with("PROBLEM key-file") && l.contains("does not load")), "{there}");
    std::fs::remove_file(&file).unwrap();
    assert!(doctor(&first).lines().any(|l| l.starts_with("note") && l.contains("is gone")));
}

/// `create --key-file` killed (SIGKILL) at any moment leaves no record without its file: after
/// each of twenty kills at staggered times, every key-file record names a file that exists.
#[test]
fn a_kill_during_create_leaves_no_record_without_its_file() {
    let swtpm = Swtpm::start();
    persist_srk(&swtpm.tcti(), swtpm.dir());
    let records = swtpm.dir().join("keys.json");
    let (mut files, mut recorded) = (0, 0);
    for i in 0..20u64 {
        let file = swtpm.dir().join(format!("k{i}.tss"));
        let mut child = common::tpm_hmac(&swtpm.tcti(), &records)
            .args(["create", "--key-file", path(&file)])
            .env("TSS2_LOG", "all+none")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3 * i));
        let _ = child.kill();
        let _ = child.wait();
        // swtpm has no resource manager: free what the killed process left loaded.
        tpm2(&swtpm.tcti(), &["tpm2_flushcontext", "-t"]);
        tpm2(&swtpm.tcti(), &["tpm2_flushcontext", "-l"]);
        let text = std::fs::read_to_string(&records).unwrap_or_default();
        let content: Value = serde_json::from_str(if text.trim().is_empty() { "{}" } else { &text }).unwrap();
        for (handle, record) in content["keys"].as_object().into_iter().flatten() {
            if let Some(recorded) = record["key_file"].as_str() {
                assert!(
                    Path::new(recorded).exists(),
                    "after a kill at {} ms: {handle}'s record names a missing {recorded}",
                    3 * i
                );
            }
        }
        files += usize::from(file.exists());
        recorded = content["keys"].as_object().map_or(0, |keys| keys.len());
    }
    // The kills fell before, during and after the work: some made nothing, some a key.
    eprintln!("20 kills: {files} key files written, {recorded} recorded");
    assert!(files > 0 && files < 20, "the kills did not spread over create's work: {files} files");
}

/// `delete` removes only the key file its record describes: a record edited to name another file
/// leaves that file alone (and says so).
#[test]
fn delete_removes_only_the_key_file_itself() {
    let swtpm = Swtpm::start();
    let file = swtpm.dir().join("k.tss");
    let made: Value = serde_json::from_str(&ok(&swtpm, &["create", "--key-file", path(&file), "--json"])).unwrap();
    let precious = swtpm.dir().join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let records = swtpm.dir().join("keys.json");
    let handle = made["handle"].as_str().unwrap();
    let text = std::fs::read_to_string(&records).unwrap().replace(path(&file), path(&precious));
    std::fs::write(&records, text).unwrap();
    let out = tpm_hmac(&swtpm, &["delete", "--handle", handle]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("was left in place"));
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
}
