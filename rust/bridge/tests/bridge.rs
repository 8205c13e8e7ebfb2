//! The bridge as KeePassXC's driver calls it, against a private swtpm: listing, responses,
//! status codes, and detection running on one thread while challenges run on others.
//! One test function: the bridge reads the TCTI from the environment once per process.

use keepassxc_tpm::{KeySpec, Metadata, PersistentHandle, Pin, Secret, Tpm, TpmOptions};
use keepassxc_tpm_bridge::testing::{challenge, challenge_with_pin, is_tpm_serial, list_keys, test_challenge, Status};
use swtpm_fixture::yubikey::hmac_sha1;
use swtpm_fixture::{persist_srk, Swtpm};

const SECRET: &str = "1ce30fd78d20dcfa40b50c18779afb0f02288db7";

#[test]
fn keepassxc_path_against_swtpm() {
    let mut swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    persist_srk(&tcti, swtpm.dir());
    let mut tpm =
        Tpm::open(&TpmOptions::tcti(Some(&tcti)).with_metadata(Metadata::at(swtpm.dir().join("keys.json")))).unwrap();
    tpm.import_key(&KeySpec::default(), &Secret::from_hex(SECRET).unwrap()).unwrap();
    drop(tpm);
    std::env::set_var("TSS2_LOG", "all+none");
    std::env::set_var("KEEPASSXC_TPM_BACKEND", backend_library());
    // No TPM at first (nothing listens on port 1): an error status, and nothing cached, so a
    // refresh finds the TPM once it is there.
    std::env::set_var("TPM2TOOLS_TCTI", "swtpm:host=127.0.0.1,port=1");
    assert_eq!(list_keys().status, Status::NoTpm);
    std::env::set_var("TPM2TOOLS_TCTI", &tcti);
    std::env::set_var("KEEPASSXC_TPM_METADATA", swtpm.dir().join("keys.json"));
    std::env::set_var("TSS2_LOG", "all+none");

    let list = list_keys();
    assert_eq!(list.status, Status::Ok, "{}", list.message);
    let serials: Vec<(u32, i32)> = list.keys.iter().map(|k| (k.serial, k.slot)).collect();
    assert_eq!(serials, vec![(0x8100_0100, 1)], "the SRK is not listed");
    assert!(list.keys[0].display_name.starts_with("TPM 2.0 HMAC-SHA1"));
    // A label is what KeePassXC shows: "TPM 2.0 HMAC-SHA1 laptop [2164261120] - Slot 1".
    {
        let mut tpm =
            Tpm::open(&TpmOptions::tcti(Some(&tcti)).with_metadata(Metadata::at(swtpm.dir().join("keys.json"))))
                .unwrap();
        tpm.set_label(PersistentHandle::new(0x8100_0100).unwrap(), Some("laptop")).unwrap();
    }
    assert_eq!(list_keys().keys[0].display_name, "TPM 2.0 HMAC-SHA1 laptop");

    let mut response = [0u8; 64];
    let result = challenge(0x8100_0100, 1, b"UnitTest", &mut response);
    assert_eq!(result.status, Status::Ok, "{}", result.message);
    assert_eq!(result.response_len, 20);
    let expected = hmac_sha1(&hex::decode(SECRET).unwrap(), b"UnitTest");
    assert_eq!(&response[..20], &expected[..]);

    assert_eq!(test_challenge(0x8100_0100, 1).status, Status::Ok);
    assert!(is_tpm_serial(0x8100_0100) && !is_tpm_serial(12_345_678));

    let mut small = [0u8; 8];
    assert_eq!(challenge(0x8100_0100, 1, b"x", &mut small).status, Status::BufferTooSmall);
    assert_eq!(challenge(0x8100_0001, 1, b"x", &mut response).status, Status::NotHmacKey);
    assert_eq!(challenge(0x8100_0155, 1, b"x", &mut response).status, Status::NoSuchKey);
    assert_eq!(challenge(0x8100_0100, 1, &[0u8; 65], &mut response).status, Status::BadChallenge);
    assert_eq!(challenge(0x8100_0100, 2, b"x", &mut response).status, Status::NoSuchKey, "TPM keys have slot 1 only");

    // Detection on one thread while two others challenge: all succeed (the bridge serialises).
    let workers: Vec<_> = (0..3)
        .map(|t| {
            std::thread::spawn(move || {
                for _ in 0..50 {
                    if t == 0 {
                        assert_eq!(list_keys().status, Status::Ok);
                    } else {
                        let mut out = [0u8; 64];
                        let r = challenge(0x8100_0100, 1, &[t as u8; 32], &mut out);
                        assert_eq!((r.status, r.response_len), (Status::Ok, 20), "{}", r.message);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }

    // A key with a PIN: the driver is told to ask for it, and a wrong one says how many tries are left.
    {
        let mut tpm =
            Tpm::open(&TpmOptions::tcti(Some(&tcti)).with_metadata(Metadata::at(swtpm.dir().join("keys.json"))))
                .unwrap();
        let spec = KeySpec {
            handle: Some(PersistentHandle::new(0x8100_0120).unwrap()),
            pin: Some(Pin::new("1357").unwrap()),
            ..KeySpec::default()
        };
        tpm.import_key(&spec, &Secret::from_hex(SECRET).unwrap()).unwrap();
        // A PIN typed in a legacy 8-bit locale is not UTF-8: it is still a PIN.
        let spec = KeySpec {
            handle: Some(PersistentHandle::new(0x8100_0121).unwrap()),
            pin: Some(Pin::new(b"gr\xfc\xdf").unwrap()),
            ..spec
        };
        tpm.import_key(&spec, &Secret::from_hex(SECRET).unwrap()).unwrap();
    }
    assert_eq!(challenge(0x8100_0120, 1, b"UnitTest", &mut response).status, Status::PinRequired);
    let wrong = challenge_with_pin(0x8100_0120, 1, b"UnitTest", b"0000", &mut response);
    assert_eq!(wrong.status, Status::AuthFailed);
    assert!(wrong.message.contains("tries left"), "{}", wrong.message);
    let right = challenge_with_pin(0x8100_0120, 1, b"UnitTest", b"1357", &mut response);
    assert_eq!((right.status, right.response_len), (Status::Ok, 20), "{}", right.message);
    assert_eq!(&response[..20], &expected[..]);
    let latin1 = challenge_with_pin(0x8100_0121, 1, b"UnitTest", b"gr\xfc\xdf", &mut response);
    assert_eq!((latin1.status, latin1.response_len), (Status::Ok, 20), "{}", latin1.message);
    assert_eq!(&response[..20], &expected[..]);

    // The TPM restarts between challenges (its sessions are gone): the kept session is replaced
    // without the caller noticing.
    swtpm.restart();
    let after_restart = challenge(0x8100_0100, 1, b"UnitTest", &mut response);
    assert_eq!(after_restart.status, Status::Ok, "{}", after_restart.message);

    // The TPM is gone: an error; once it is back, the next challenge reconnects.
    swtpm.stop();
    let failed = challenge(0x8100_0100, 1, b"UnitTest", &mut response);
    assert_eq!(failed.status, Status::NoTpm, "a lost TPM is reported as no TPM: {}", failed.message);
    swtpm.restart();
    let ok_again = challenge(0x8100_0100, 1, b"UnitTest", &mut response);
    assert_eq!(ok_again.status, Status::Ok, "reconnected: {}", ok_again.message);

    // The TPM freezes: the challenge gives up after the timeout instead of hanging KeePassXC.
    swtpm.freeze();
    let started = std::time::Instant::now();
    let frozen = challenge(0x8100_0100, 1, b"UnitTest", &mut response);
    let waited = started.elapsed();
    swtpm.thaw();
    assert_eq!(frozen.status, Status::NoTpm, "{}", frozen.message);
    assert!(frozen.message.contains("did not answer within 10 s"), "{}", frozen.message);
    assert!(waited < std::time::Duration::from_secs(15), "gave up after {waited:?}");
    let after = challenge(0x8100_0100, 1, b"UnitTest", &mut response);
    assert_eq!(after.status, Status::Ok, "works again once the TPM answers: {}", after.message);
}

/// The backend cdylib cargo built next to this test (`cargo build --workspace`).
fn backend_library() -> std::path::PathBuf {
    swtpm_fixture::workspace_library("libkeepassxc_tpm_backend.so")
}
