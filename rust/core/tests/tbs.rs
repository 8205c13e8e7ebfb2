//! The Windows build's core over TBS (issue 32), run under wine by tests/windows/test-windows.sh:
//! through the repo's tbs.dll double (tests/windows/tbs-double.c) to the swtpm whose port is in
//! KEEPASSXC_TPM_TBS_PORT. A key file imported from the YubiKey reference secret answers the
//! reference vectors byte for byte; a command the double blocks (as Windows does for standard
//! users, TPM_E_COMMAND_BLOCKED) is reported as blocked, never a panic; without a TPM behind TBS the
//! error says so.
#![cfg(windows)]

use hmac::{Hmac, Mac};
use keepassxc_tpm::{yubikey_message, Error, KeyFileTpm, KeySpec, Metadata, Secret};

/// ykman's and KeePassXC's test secret (the fixture's YUBIKEY_SECRET).
const YUBIKEY_SECRET: &str = "303132333435363738393a3b3c3d3e3f40414243";

/// What a YubiKey slot programmed with YUBIKEY_SECRET answers to KeePassXC's `challenge`.
fn yubikey_answer(challenge: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&hex::decode(YUBIKEY_SECRET).unwrap()).unwrap();
    mac.update(&yubikey_message(challenge).unwrap());
    mac.finalize().into_bytes().to_vec()
}

fn blocking(codes: &str) {
    // The double reads it at each command; the tests in this file run one after the other.
    std::env::set_var("KEEPASSXC_TPM_TBS_BLOCK", codes);
}

#[test]
fn over_tbs_a_key_file_answers_the_reference_vectors_and_blocked_commands_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let records = || Metadata::at(dir.path().join("keys.json"));
    let path = dir.path().join("twin.tss");
    blocking("0x120,0x12A");
    let secret = Secret::from_hex(YUBIKEY_SECRET).unwrap();
    let key = KeyFileTpm::open(records()).unwrap().create(&KeySpec::default(), Some(&secret), &path).unwrap();
    assert!(key.handle.is_file_key() && key.empty_policy, "{key:?}");
    for challenge in [&b""[..], b"x", &[0x20; 63], &[0x41; 64], &(101..=132).collect::<Vec<u8>>()] {
        let response = KeyFileTpm::open(records()).unwrap().challenge(&path, challenge).unwrap();
        assert_eq!(response.to_vec(), yubikey_answer(challenge), "challenge {}", hex::encode(challenge));
    }

    // Windows blocking a command this user needs: named, with TBS's code.
    blocking("0x153");
    let refused = KeyFileTpm::open(records()).unwrap().create(&KeySpec::default(), None, &dir.path().join("b.tss"));
    let refused = refused.unwrap_err();
    assert!(matches!(refused, Error::Blocked { command: "TPM2_Create" }), "{refused:?}");
    assert!(refused.to_string().contains("Windows blocks the TPM command TPM2_Create"), "{refused}");
    assert!(!dir.path().join("b.tss").exists());
    blocking("0x157");
    let refused = KeyFileTpm::open(records()).unwrap().challenge(&path, b"x").unwrap_err();
    assert!(matches!(refused, Error::Blocked { command: "TPM2_Load" }), "{refused:?}");
    // The command Windows blocks is the one named, wherever in the sequence it comes.
    blocking("0x176");
    let refused = KeyFileTpm::open(records()).unwrap().challenge(&path, b"x").unwrap_err();
    assert!(matches!(refused, Error::Blocked { command: "TPM2_StartAuthSession" }), "{refused:?}");
    blocking("");
    assert_eq!(KeyFileTpm::open(records()).unwrap().challenge(&path, b"x").unwrap().to_vec(), yubikey_answer(b"x"));

    // No TPM behind TBS.
    let port = std::env::var("KEEPASSXC_TPM_TBS_PORT").unwrap();
    std::env::remove_var("KEEPASSXC_TPM_TBS_PORT");
    let missing = KeyFileTpm::open(records()).err().expect("no TPM");
    std::env::set_var("KEEPASSXC_TPM_TBS_PORT", port);
    assert!(missing.to_string().starts_with("no TPM reachable through TBS"), "{missing}");
}
