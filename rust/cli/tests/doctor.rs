//! `tpm-hmac doctor` against a private swtpm, one test per problem swtpm can show: each is
//! reported on one line with its fix, the exit status says whether anything is wrong, and where
//! the fix is a command, running it makes the problem go away.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use swtpm_fixture::{persist_srk, tpm2, Swtpm};

fn doctor_in(tcti: &str, metadata: &Path, extra: &[&str]) -> Output {
    common::tpm_hmac(tcti, metadata)
        .arg("doctor")
        .args(extra)
        .env_remove("KEEPASSXC_TPM_BACKEND")
        .env_remove("TSS2_LOG")
        .output()
        .expect("run tpm-hmac doctor")
}

fn doctor(swtpm: &Swtpm, extra: &[&str]) -> Output {
    doctor_in(&swtpm.tcti(), &swtpm.dir().join("keys.json"), extra)
}

/// Another tpm-hmac subcommand on the same TPM and metadata file as `doctor`.
fn tpm_hmac(swtpm: &Swtpm, args: &[&str]) -> Output {
    common::tpm_hmac(&swtpm.tcti(), &swtpm.dir().join("keys.json")).args(args).output().expect("run tpm-hmac")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The report's line for `check`.
fn line<'a>(report: &'a str, check: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(&format!("{check}:")))
        .unwrap_or_else(|| panic!("no {check} line in:\n{report}"))
}

fn problem<'a>(out: &'a Output, report: &'a str, check: &str) -> &'a str {
    assert!(!out.status.success(), "a problem makes doctor fail:\n{report}");
    let line = line(report, check);
    assert!(line.starts_with("PROBLEM ") && line.contains("; fix: "), "{line}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("ERROR:"), "{stderr}");
    line
}

/// The fix of a problem line, after "fix: ", up to " (" where a remark starts.
fn fix_of(line: &str) -> &str {
    let fix = &line[line.find("; fix: ").unwrap() + 7..];
    fix.split(" (").next().unwrap()
}

/// Runs a fix as the user would paste it (tpm2-tools commands joined by &&).
fn run_fix(swtpm: &Swtpm, fix: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(fix)
        .current_dir(swtpm.dir())
        .env("TPM2TOOLS_TCTI", swtpm.tcti())
        .env("TSS2_LOG", "all+none")
        .status()
        .unwrap();
    assert!(status.success(), "the fix `{fix}` failed");
    tpm2(&swtpm.tcti(), &["tpm2_flushcontext", "-t"]);
}

/// The backend cdylib cargo built for the workspace.
fn backend_library() -> PathBuf {
    swtpm_fixture::workspace_library("libkeepassxc_tpm_backend.so")
}

#[test]
fn a_healthy_tpm_passes_and_json_says_the_same() {
    let swtpm = Swtpm::start();
    persist_srk(&swtpm.tcti(), swtpm.dir());
    let backend = backend_library();
    let out = doctor(&swtpm, &["--backend", backend.to_str().unwrap()]);
    let report = stdout(&out);
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!report.contains("PROBLEM"), "{report}");
    assert!(line(&report, "storage-key").contains("standard ECC P-256 SRK"), "{report}");
    assert!(line(&report, "connection").contains("answers"), "{report}");
    assert!(line(&report, "tpm").contains("IBM"), "swtpm says it is IBM's: {report}");
    assert!(line(&report, "keepassxc-backend").starts_with("ok") && report.contains("loads"), "{report}");
    assert!(line(&report, "lockout").contains("0 of 3"), "{report}");

    let out = doctor(&swtpm, &["--json", "--backend", backend.to_str().unwrap()]);
    assert!(out.status.success());
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["healthy"], true);
    assert_eq!(json["tpm"]["srk"], "Standard");
    assert_eq!(json["tpm"]["locked_out"], false);
    assert!(json["tpm"]["persistent_free"].as_u64().unwrap() > 0);
    assert!(json["tpm"]["pcr_banks"].as_array().unwrap().iter().any(|b| b == "sha256"));
    let checks: Vec<&str> = json["findings"].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap()).collect();
    for check in [
        "device",
        "tcti-modules",
        "connection",
        "tpm",
        "storage-key",
        "persistent-slots",
        "lockout",
        "pcr-banks",
        "metadata",
        "keepassxc-backend",
    ] {
        assert!(checks.contains(&check), "{check} missing from {checks:?}");
    }
}

#[test]
fn a_missing_srk_is_a_problem_whose_fix_works() {
    let swtpm = Swtpm::start();
    // A fresh TPM has none yet: the first create makes it
    let out = doctor(&swtpm, &[]);
    let report = stdout(&out);
    assert!(out.status.success() && line(&report, "storage-key").starts_with("note "), "{report}");
    let create = tpm_hmac(&swtpm, &["create"]);
    assert!(create.status.success(), "{}", String::from_utf8_lossy(&create.stderr));
    assert!(line_ok(&stdout(&doctor(&swtpm, &[])), "storage-key"), "create persisted the standard SRK");
    // Another tool takes it away while a key depends on it
    tpm2(&swtpm.tcti(), &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", "0x81000001"]);
    let out = doctor(&swtpm, &[]);
    let report = stdout(&out);
    let line = problem(&out, &report, "storage-key");
    assert!(line.contains("nothing at 0x81000001"), "{line}");
    run_fix(&swtpm, fix_of(line));
    let out = doctor(&swtpm, &[]);
    let report = stdout(&out);
    assert!(out.status.success(), "{report}");
    assert!(line_ok(&report, "storage-key"), "{report}");
}

fn line_ok(report: &str, check: &str) -> bool {
    line(report, check).starts_with("ok ")
}

#[test]
fn lockout_is_a_problem_until_it_is_cleared() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    persist_srk(&tcti, swtpm.dir());
    let pin = swtpm.dir().join("pin");
    std::fs::write(&pin, "right\n").unwrap();
    let wrong = swtpm.dir().join("wrong");
    std::fs::write(&wrong, "wrong\n").unwrap();
    let tpm_hmac = |args: &[&str]| tpm_hmac(&swtpm, args);
    let created = tpm_hmac(&["create", "--pin-file", pin.to_str().unwrap()]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let handle = stdout(&created).trim().to_owned();
    // swtpm allows 3 failures; each wrong PIN counts one
    for _ in 0..3 {
        let out = tpm_hmac(&["challenge", "--handle", &handle, "--hex", "01", "--pin-file", wrong.to_str().unwrap()]);
        assert!(!out.status.success());
    }
    let out = doctor(&swtpm, &[]);
    let report = stdout(&out);
    let line = problem(&out, &report, "lockout");
    assert!(line.contains("locked out") && line.contains("3 of 3"), "{line}");
    assert!(line.contains("tpm2_dictionarylockout --clear-lockout"), "{line}");
    let json: Value = serde_json::from_str(&stdout(&doctor(&swtpm, &["--json"]))).unwrap();
    assert_eq!(json["healthy"], false);
    assert_eq!(json["tpm"]["locked_out"], true);

    tpm2(&tcti, &["tpm2_dictionarylockout", "--clear-lockout"]);
    let out = doctor(&swtpm, &[]);
    let report = stdout(&out);
    assert!(out.status.success() && line_ok(&report, "lockout"), "{report}");
    let answered = tpm_hmac(&["challenge", "--handle", &handle, "--hex", "01", "--pin-file", pin.to_str().unwrap()]);
    assert!(answered.status.success(), "the key answers again: {}", String::from_utf8_lossy(&answered.stderr));
}

#[test]
fn a_full_tpm_is_a_problem_before_create_fails() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    persist_srk(&tcti, swtpm.dir());
    let ctx = swtpm.dir().join("filler.ctx");
    let ctx = ctx.to_str().unwrap();
    tpm2(&tcti, &["tpm2_createprimary", "-Q", "-C", "o", "-G", "ecc", "-c", ctx]);
    tpm2(&tcti, &["tpm2_flushcontext", "-t"]);
    // Copies of one primary at handles outside the project's range, until the TPM has no room
    let mut filled = 0;
    for handle in 0x8100_0200u32.. {
        let out = Command::new("tpm2_evictcontrol")
            .args(["-Q", "-C", "o", "-c", ctx, &format!("0x{handle:08x}")])
            .env("TPM2TOOLS_TCTI", &tcti)
            .env("TSS2_LOG", "all+none")
            .output()
            .unwrap();
        // Each tpm2-tools call loads the saved context again: free the slot
        tpm2(&tcti, &["tpm2_flushcontext", "-t"]);
        if !out.status.success() {
            break;
        }
        filled += 1;
        assert!(filled < 1000, "swtpm never filled up");
    }
    let out = doctor(&swtpm, &[]);
    let report = stdout(&out);
    let line = problem(&out, &report, "persistent-slots");
    assert!(line.contains("room for 0 more") && line.contains("tpm-hmac delete"), "{line}");

    let create = tpm_hmac(&swtpm, &["create"]);
    assert!(!create.status.success(), "create fails as doctor said");
    let stderr = String::from_utf8_lossy(&create.stderr);
    assert!(stderr.contains("full"), "{stderr}");
    assert_eq!(stderr.matches("delete a key").count(), 1, "the remedy once: {stderr}");
}

#[test]
fn an_unknown_tcti_module_is_named_with_the_ones_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let out = doctor_in("nosuchmodule:", &dir.path().join("keys.json"), &[]);
    let report = stdout(&out);
    let line = problem(&out, &report, "tcti-modules");
    assert!(line.contains("no TCTI module called \"nosuchmodule\"") && line.contains("device:/dev/tpmrm0"), "{line}");
    assert!(line.contains("device, tabrmd, swtpm"), "{line}");
    assert!(report.contains("PROBLEM connection:"), "nothing answers it: {report}");
}

#[test]
fn a_missing_or_untrusted_backend_is_a_problem() {
    let swtpm = Swtpm::start();
    persist_srk(&swtpm.tcti(), swtpm.dir());
    let out = doctor(&swtpm, &["--backend", "/nonexistent/libkeepassxc_tpm_backend.so"]);
    let report = stdout(&out);
    assert!(problem(&out, &report, "keepassxc-backend").contains("does not exist"), "{report}");

    // A copy anyone may replace is refused, as KeePassXC's own loader refuses it
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libkeepassxc_tpm_backend.so");
    std::fs::copy(backend_library(), &copy).unwrap();
    Command::new("chmod").args(["0777", copy.to_str().unwrap()]).status().unwrap();
    let out = doctor(&swtpm, &["--backend", copy.to_str().unwrap()]);
    let report = stdout(&out);
    assert!(problem(&out, &report, "keepassxc-backend").contains("writable by group or others"), "{report}");
}

#[test]
fn a_broken_metadata_file_is_a_problem() {
    let swtpm = Swtpm::start();
    persist_srk(&swtpm.tcti(), swtpm.dir());
    std::fs::write(swtpm.dir().join("keys.json"), b"{not json").unwrap();
    let out = doctor(&swtpm, &[]);
    let report = stdout(&out);
    assert!(problem(&out, &report, "metadata").contains("not valid JSON"), "{report}");
}

#[test]
fn no_device_access_names_the_group_and_tpm_udev() {
    let Some((dir, device)) = swtpm_fixture::unopenable_device() else { return };
    let as_nobody = || {
        swtpm_fixture::as_nobody(env!("CARGO_BIN_EXE_tpm-hmac"))
            .arg("--tcti")
            .arg(format!("device:{}", device.display()))
            .arg("doctor")
            .env("KEEPASSXC_TPM_METADATA", dir.path().join("keys.json"))
            .output()
            .unwrap()
    };
    // root:root, as without tpm-udev's rule
    let out = as_nobody();
    let report = stdout(&out);
    let line = problem(&out, &report, "device");
    assert!(
        line.contains("you may not open") && line.contains("root:root") && line.contains("apt install tpm-udev"),
        "{line}"
    );
    // root:tss, as with the rule: joining the group is the fix
    if Command::new("chgrp").args(["tss", device.to_str().unwrap()]).status().is_ok_and(|s| s.success()) {
        let out = as_nobody();
        let report = stdout(&out);
        let line = problem(&out, &report, "device");
        assert!(line.contains("root:tss") && line.contains("usermod -aG tss"), "{line}");
    }
}

/// The findings of `check` in doctor's JSON report, as (verdict, detail).
fn findings_of(report: &Value, check: &str) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .map(|f| (f["verdict"].as_str().unwrap().to_owned(), f["detail"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn which_keys_stock_keepassxc_sees_through_the_pcsc_driver_and_why_not() {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        eprintln!("SKIP: `tpm-hmac pcsc enable` writes a root-owned file: needs root");
        return;
    }
    let swtpm = Swtpm::start();
    persist_srk(&swtpm.tcti(), swtpm.dir());
    let config = swtpm.dir().join("pcsc.json");
    let config_arg = config.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = tpm_hmac(&swtpm, args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["create", "--handle", "0x81000100"]);
    run(&["create", "--handle", "0x81000101"]);
    let pin_file = swtpm.dir().join("pin");
    std::fs::write(&pin_file, "2468\n").unwrap();
    run(&["create", "--handle", "0x81000102", "--pin-file", pin_file.to_str().unwrap()]);
    run(&["pcsc", "enable", "--handle", "0x81000100", "--config", config_arg]);
    let json = |out: &Output| serde_json::from_str::<Value>(&stdout(out)).unwrap();
    let report = json(&doctor(&swtpm, &["--json", "--pcsc-config", config_arg]));
    let keys = findings_of(&report, "pcsc-keys");
    assert!(keys.iter().any(|(v, d)| v == "ok" && d.contains("0x81000100 (--yubikey 1:2164261120)")), "{keys:?}");
    assert!(keys.iter().any(|(v, d)| v == "note" && d.contains("0x81000101: not enabled")), "{keys:?}");
    assert!(keys.iter().any(|(v, d)| v == "note" && d.contains("0x81000102: it has a PIN")), "{keys:?}");

    // The enabled key is evicted around the project and another made at its handle: the driver
    // would not serve it (its pinned name differs), and doctor says so as a problem.
    tpm2(&swtpm.tcti(), &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", "0x81000100"]);
    let other = Command::new(env!("CARGO_BIN_EXE_tpm-hmac"))
        .args(["--tcti", &swtpm.tcti(), "create", "--handle", "0x81000100"])
        .env("KEEPASSXC_TPM_METADATA", swtpm.dir().join("other-user.json"))
        .output()
        .unwrap();
    assert!(other.status.success());
    let out = doctor(&swtpm, &["--pcsc-config", config_arg]);
    let report = stdout(&out);
    assert!(!out.status.success(), "{report}");
    let line = report.lines().find(|l| l.starts_with("PROBLEM pcsc-keys:")).unwrap_or_else(|| panic!("{report}"));
    assert!(
        line.contains("0x81000100: another key is there now") && line.contains("fix: sudo tpm-hmac pcsc disable"),
        "{line}"
    );
}
