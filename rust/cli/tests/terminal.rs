//! PINs typed at a terminal, as a person types them: slowly (past the 10 s TPM timeout) and
//! sometimes giving up with Ctrl-C. The terminal has echo on again whatever happens.
#![cfg(unix)]

use std::process::Command;

use serde_json::Value;
use swtpm_fixture::Swtpm;

/// Runs tpm-hmac on a pseudo-terminal (tests/pty.py), answering prompts as `answers` say.
fn at_terminal(swtpm: &Swtpm, args: &[&str], answers: &[(&str, f32, &str)]) -> Value {
    let mut command = Command::new("python3");
    command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pty.py"));
    for (prompt, delay, text) in answers {
        command.args(["--answer", prompt, &delay.to_string(), text]);
    }
    command
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_tpm-hmac"))
        .args(["--tcti", &swtpm.tcti()])
        .args(args)
        .env("KEEPASSXC_TPM_METADATA", swtpm.dir().join("keys.json"));
    let out = command.output().expect("python3 runs tests/pty.py");
    assert!(out.status.success(), "pty.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_slowly_typed_pin_works_and_ctrl_c_restores_the_terminal() {
    let swtpm = Swtpm::start();
    // Typed 12 s after the prompt, past the TPM's 10 s timeout: reading is not under it.
    let created = at_terminal(
        &swtpm,
        &["create", "--pin"],
        &[("New PIN for the key: ", 12.0, "4711\\n"), ("Repeat the PIN: ", 0.0, "4711\\n")],
    );
    assert_eq!(created["rc"], 0, "{}", created["output"]);
    assert!(created["output"].as_str().unwrap().contains("0x81000100"), "{}", created["output"]);
    assert!(!created["output"].as_str().unwrap().contains("4711"), "the PIN is not echoed: {}", created["output"]);
    assert_eq!(created["echo"], true, "echo is on again afterwards");

    let answered = at_terminal(
        &swtpm,
        &["challenge", "--handle", "0x81000100", "--hex", "00"],
        &[("PIN for the TPM key", 12.0, "4711\\n")],
    );
    assert_eq!(answered["rc"], 0, "{}", answered["output"]);
    assert!(answered["output"].as_str().unwrap().lines().any(|l| l.trim().len() == 40), "{}", answered["output"]);
    assert_eq!(answered["echo"], true);

    let interrupted = at_terminal(
        &swtpm,
        &["challenge", "--handle", "0x81000100", "--hex", "00"],
        &[("PIN for the TPM key", 0.5, "\\x03")],
    );
    assert_eq!(interrupted["rc"], 130, "{}", interrupted["output"]);
    assert_eq!(interrupted["echo"], true, "Ctrl-C at the PIN prompt leaves echo on");
}
