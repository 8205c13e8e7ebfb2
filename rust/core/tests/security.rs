//! The README's security promises, tested the way an attacker would: tpm2-tools driving the
//! TPM around the project, a proxy capturing every byte between client and TPM, and a
//! metadata file edited by hand.
#![cfg(unix)]

mod common;

use common::*;
use keepassxc_tpm::{Algorithm, Error, KeySpec, Metadata, Pin, Secret, Tpm, TpmOptions};
use serde_json::Value;
use sha2::{Digest, Sha256};
use swtpm_fixture::{tpm2, CommandLog, Swtpm};

fn pin(text: &str) -> Pin {
    Pin::new(text).unwrap()
}

fn metadata_file(swtpm: &Swtpm) -> std::path::PathBuf {
    swtpm.dir().join("keys.json")
}

/// Edits the record of `key` in the test's metadata file.
fn edit_record(swtpm: &Swtpm, key: keepassxc_tpm::PersistentHandle, edit: impl FnOnce(&mut Value)) {
    let path = metadata_file(swtpm);
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut file["keys"][key.to_string()]);
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
}

/// tpm2_hmac on `key` in a policy session that satisfies PolicyPCR (PCR 16) and, when
/// `auth_value` is given, PolicyAuthValue with that authValue. Returns the response or the error.
fn tpm2_tools_policy_hmac(swtpm: &Swtpm, key: &str, auth_value: Option<&[u8]>, data: &[u8]) -> Result<Vec<u8>, String> {
    let tcti = swtpm.tcti();
    let dir = swtpm.dir();
    let (session, input, output) = (dir.join("session.ctx"), dir.join("in.bin"), dir.join("out.bin"));
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    std::fs::write(&input, data).unwrap();
    let _ = std::fs::remove_file(&output);
    tpm2(&tcti, &["tpm2_startauthsession", "--policy-session", "-S", &path(&session)]);
    tpm2(&tcti, &["tpm2_policypcr", "-Q", "-S", &path(&session), "-l", "sha256:16"]);
    let mut auth = format!("session:{}", path(&session));
    if let Some(value) = auth_value {
        tpm2(&tcti, &["tpm2_policyauthvalue", "-Q", "-S", &path(&session)]);
        auth.push_str(&format!("+hex:{}", hex::encode(value)));
    }
    let out = std::process::Command::new("tpm2_hmac")
        .args(["-c", key, "-p", &auth, "-g", "sha1", "-o", &path(&output), &path(&input)])
        .env("TPM2TOOLS_TCTI", &tcti)
        .env("TSS2_LOG", "all+none")
        .output()
        .expect("tpm2_hmac runs");
    // Without a resource manager the session stays loaded unless the HMAC used it up.
    let _ = std::process::Command::new("tpm2_flushcontext").arg("-s").env("TPM2TOOLS_TCTI", &tcti).output();
    if out.status.success() {
        Ok(std::fs::read(&output).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn auth_value(pin_text: &str) -> Vec<u8> {
    Sha256::digest(pin_text.as_bytes()).to_vec()
}

#[test]
fn a_pcr_bound_key_with_a_pin_needs_both() {
    let swtpm = Swtpm::start();
    let mut tpm = open(&swtpm);
    let spec = KeySpec { pcrs: vec![16], pin: Some(pin("2468")), ..KeySpec::default() };
    let key = tpm.import_key(&spec, &Secret::from_hex(YUBIKEY_SECRET).unwrap()).unwrap();
    assert!(key.policy_bound && key.needs_pin());
    let expected = hmac_sha1(&hex::decode(YUBIKEY_SECRET).unwrap(), &reference_message(&[5u8; 32]));
    drop(tpm);

    // Around the project: the PCR policy alone does not unlock the key...
    let message = reference_message(&[5u8; 32]);
    let refused = tpm2_tools_policy_hmac(&swtpm, &key.handle.to_string(), None, &message);
    assert!(refused.is_err(), "PolicyPCR without the PIN must be refused, got {refused:?}");
    // ...while PolicyPCR + PolicyAuthValue with the PIN's authValue does (positive control).
    let allowed = tpm2_tools_policy_hmac(&swtpm, &key.handle.to_string(), Some(&auth_value("2468")), &message);
    assert_eq!(allowed.as_deref(), Ok(&expected[..]), "the policy is PolicyPCR then PolicyAuthValue");

    // Through the project, with bus encryption on (the default).
    let mut tpm = open(&swtpm);
    tpm2(&swtpm.tcti(), &["tpm2_dictionarylockout", "-Q", "--clear-lockout"]);
    assert!(matches!(tpm.challenge(key.handle, &[5u8; 32]), Err(Error::PinRequired { .. })));
    match tpm.challenge_with_pin(key.handle, &[5u8; 32], Some(&pin("1357"))) {
        Err(e @ Error::AuthFailed { tries_left: Some(_), .. }) => assert!(e.to_string().contains("left"), "{e}"),
        other => panic!("a wrong PIN must be a wrong-PIN error, not a response: {other:?}"),
    }
    assert_eq!(tpm.da_status().unwrap().failures, 1, "the wrong PIN counted toward the lockout");
    assert_eq!(&tpm.challenge_with_pin(key.handle, &[5u8; 32], Some(&pin("2468"))).unwrap()[..], &expected[..]);
    // And the boot state still counts.
    tpm2(&swtpm.tcti(), &["tpm2_pcrextend", &format!("16:sha256={}", "cd".repeat(32))]);
    assert!(matches!(
        tpm.challenge_with_pin(key.handle, &[5u8; 32], Some(&pin("2468"))),
        Err(Error::PolicyFailed { .. })
    ));
}

/// Every 8-byte window of `needle` that occurs in `haystack`.
fn leaks(haystack: &[u8], needle: &[u8]) -> usize {
    needle.windows(8.min(needle.len())).filter(|w| contains(haystack, w)).count()
}

#[test]
fn no_secret_pin_or_response_crosses_the_bus_in_clear() {
    let swtpm = Swtpm::start();
    let proxy = CommandLog::start(swtpm.port());
    let mut tpm = open_at(&swtpm, &proxy.tcti());
    let secrets: Vec<Vec<u8>> =
        (1..=3u8).map(|k| (0..20u8).map(|b| b.wrapping_mul(31).wrapping_add(k * 71)).collect()).collect();
    let secret = |i: usize| Secret::from_hex(&hex::encode(&secrets[i])).unwrap();
    let pins = ["open sesame 4711", "second pin", "third pin"];

    let plain = tpm.import_key(&KeySpec::default(), &secret(0)).unwrap().handle;
    let imported_with_pin =
        tpm.import_key(&KeySpec { pin: Some(pin(pins[0])), ..KeySpec::default() }, &secret(1)).unwrap().handle;
    let generated_with_pin = tpm.create_key(&KeySpec { pin: Some(pin(pins[1])), ..KeySpec::default() }).unwrap().handle;
    let bound_with_pin = tpm
        .import_key(&KeySpec { pin: Some(pin(pins[2])), pcrs: vec![16], ..KeySpec::default() }, &secret(2))
        .unwrap()
        .handle;
    let challenge = [0x42u8; 32];
    let responses = [
        tpm.challenge(plain, &challenge).unwrap(),
        tpm.challenge_with_pin(imported_with_pin, &challenge, Some(&pin(pins[0]))).unwrap(),
        tpm.challenge_with_pin(generated_with_pin, &challenge, Some(&pin(pins[1]))).unwrap(),
        tpm.challenge_with_pin(bound_with_pin, &challenge, Some(&pin(pins[2]))).unwrap(),
    ];
    assert_eq!(&responses[0][..], &hmac_sha1(&secrets[0], &challenge)[..]);
    assert_eq!(&responses[3][..], &hmac_sha1(&secrets[2], &challenge)[..]);

    let (to_tpm, from_tpm) = proxy.traffic();
    assert!(contains(&to_tpm, &challenge), "control: the capture sees what is sent in clear (the challenge)");
    for (what, needle) in secrets
        .iter()
        .map(|s| ("a secret", s.clone()))
        .chain(pins.iter().map(|p| ("a PIN's authValue", auth_value(p))))
        .chain(pins.iter().map(|p| ("a PIN", p.as_bytes().to_vec())))
        .chain(responses.iter().map(|r| ("a response", r.to_vec())))
    {
        assert_eq!(leaks(&to_tpm, &needle), 0, "{what} was sent to the TPM in clear");
        assert_eq!(leaks(&from_tpm, &needle), 0, "{what} came back from the TPM in clear");
    }
}

#[test]
fn a_record_naming_another_key_fails_closed_before_any_session() {
    let swtpm = Swtpm::start();
    let key = import(&mut open(&swtpm), YUBIKEY_SECRET, None, Algorithm::Sha1);
    edit_record(&swtpm, key, |r| r["key_name"] = Value::from(format!("000b{}", "00".repeat(32))));
    let proxy = CommandLog::start(swtpm.port());
    match open_at(&swtpm, &proxy.tcti()).challenge(key, b"x") {
        Err(e @ Error::RecordMismatch { .. }) => assert!(e.explained().contains("remove the entry"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(!proxy.commands().contains(&START_AUTH_SESSION), "no session salted: {:x?}", proxy.commands());
}

#[test]
fn without_a_record_the_storage_key_is_pinned_on_first_use() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    let key = import(&mut open(&swtpm), YUBIKEY_SECRET, None, Algorithm::Sha1);
    let provisioned = Metadata::at(metadata_file(&swtpm)).get(key).unwrap().unwrap();
    std::fs::remove_file(metadata_file(&swtpm)).unwrap();

    assert_eq!(open(&swtpm).challenge(key, b"ok").unwrap().len(), 20, "a key without a record still works");
    let pinned = Metadata::at(metadata_file(&swtpm)).get(key).unwrap().expect("recorded on first use");
    assert_eq!(pinned, provisioned, "the same pins as at provisioning: key name, public area, storage key");

    // Swap the SRK, as a stand-in TPM or an interposer would present another storage key.
    tpm2(&tcti, &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", "0x81000001"]);
    let ctx = swtpm.dir().join("other.ctx");
    tpm2(&tcti, &["tpm2_createprimary", "-Q", "-C", "o", "-G", "rsa2048", "-c", ctx.to_str().unwrap()]);
    tpm2(&tcti, &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", ctx.to_str().unwrap(), "0x81000001"]);
    tpm2(&tcti, &["tpm2_flushcontext", "-t"]);
    let proxy = CommandLog::start(swtpm.port());
    // tpm2-tss's path reads the storage key and compares it before it encrypts a salt to it.
    let mut esys = Tpm::open(&options_at(&swtpm, &proxy.tcti()).with_direct_path(false)).unwrap();
    assert!(matches!(esys.challenge(key, b"ok"), Err(Error::StorageKeyChanged { .. })));
    assert!(
        !proxy.commands().contains(&START_AUTH_SESSION),
        "the storage key is checked before a salt is encrypted to it: {:x?}",
        proxy.commands()
    );
    // The direct path encrypts its salt to the pinned public key itself (never to what answers),
    // so the stand-in cannot use the session; it then falls back and reports the same.
    assert!(matches!(open_at(&swtpm, &proxy.tcti()).challenge(key, b"ok"), Err(Error::StorageKeyChanged { .. })));
}

#[test]
fn the_key_not_the_file_decides_whether_a_pin_is_needed() {
    let swtpm = Swtpm::start();
    let mut tpm = open(&swtpm);
    let secret = Secret::from_hex(YUBIKEY_SECRET).unwrap();
    let key = tpm.import_key(&KeySpec { pin: Some(pin("2468")), ..KeySpec::default() }, &secret).unwrap().handle;
    let noda = import(&mut tpm, &"11".repeat(20), None, Algorithm::Sha1);
    // Used correctly once, so that libtpms would count a wrong authorisation (not TPM_RC_RETRY).
    assert_eq!(tpm.challenge_with_pin(key, &[1u8; 32], Some(&pin("2468"))).unwrap().len(), 20);
    drop(tpm);
    let noda_public = Metadata::at(metadata_file(&swtpm)).get(noda).unwrap().unwrap().key_public.unwrap();
    let name = key.to_string();
    type Edit<'a> = Box<dyn Fn(&mut Value) + 'a>;
    let edits: [(&str, Edit); 3] = [
        (
            "its public area removed",
            Box::new(|file| drop(file["keys"][&name].as_object_mut().unwrap().remove("key_public"))),
        ),
        (
            "the public area of a key without a PIN",
            Box::new(|file| file["keys"][&name]["key_public"] = noda_public.clone().into()),
        ),
        ("no record at all", Box::new(|file| drop(file["keys"].as_object_mut().unwrap().remove(&name)))),
    ];
    for (what, edit) in edits {
        let path = metadata_file(&swtpm);
        let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut file);
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        let proxy = CommandLog::start(swtpm.port());
        let mut tpm = open_at(&swtpm, &proxy.tcti());
        assert!(matches!(tpm.challenge(key, &[1u8; 32]), Err(Error::PinRequired { .. })), "{what}");
        assert!(!proxy.commands().contains(&HMAC), "{what}: no HMAC sent without the PIN");
        assert_eq!(tpm.da_status().unwrap().failures, 0, "{what}: no try burnt");
        assert_eq!(tpm.challenge_with_pin(key, &[1u8; 32], Some(&pin("2468"))).unwrap().len(), 20, "{what}");
    }
}

fn lockout_counter(swtpm: &Swtpm) -> u32 {
    swtpm_fixture::lockout_counter(&swtpm.tcti())
}

#[test]
fn a_stale_record_never_costs_a_dictionary_attack_try() {
    // User A records a key without a PIN at a handle; it is evicted around the project, and
    // user B makes a key with a PIN at the same handle. A's record is consistent (its public
    // area hashes to its name) but stale.
    let swtpm = Swtpm::start();
    let mut a = open(&swtpm);
    let key = import(&mut a, YUBIKEY_SECRET, Some(0x8100_0100), Algorithm::Sha1);
    drop(a);
    tpm2(&swtpm.tcti(), &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", "0x81000100"]);
    let mut b =
        Tpm::open(&TpmOptions::tcti(Some(&swtpm.tcti())).with_metadata(Metadata::at(swtpm.dir().join("user-b.json"))))
            .unwrap();
    let spec = KeySpec { handle: Some(key), pin: Some(pin("2468")), ..KeySpec::default() };
    b.import_key(&spec, &Secret::from_hex(&"22".repeat(20)).unwrap()).unwrap();
    // Used correctly once, so that libtpms counts the next wrong authorisation (not TPM_RC_RETRY).
    assert_eq!(b.challenge_with_pin(key, &[1u8; 32], Some(&pin("2468"))).unwrap().len(), 20);
    drop(b);
    assert_eq!(lockout_counter(&swtpm), 0);

    let proxy = CommandLog::start(swtpm.port());
    for attempt in 0..3 {
        // A new process each time, as `tpm-hmac challenge` would be.
        let mut a = open_at(&swtpm, &proxy.tcti());
        match a.challenge(key, &[1u8; 32]) {
            Err(e @ Error::RecordMismatch { .. }) => assert!(!e.to_string().contains('\n'), "{e}"),
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    assert!(!proxy.commands().contains(&HMAC), "no authorisation went out: {:x?}", proxy.commands());
    assert_eq!(lockout_counter(&swtpm), 0, "TPM2_PT_LOCKOUT_COUNTER unchanged");
    // B's key is not locked out: the right PIN works.
    let mut b =
        Tpm::open(&TpmOptions::tcti(Some(&swtpm.tcti())).with_metadata(Metadata::at(swtpm.dir().join("user-b.json"))))
            .unwrap();
    assert_eq!(b.challenge_with_pin(key, &[1u8; 32], Some(&pin("2468"))).unwrap().len(), 20);
}

#[test]
fn a_pin_is_never_used_without_bus_encryption() {
    let swtpm = Swtpm::start();
    let mut tpm = open(&swtpm);
    let secret = Secret::from_hex(YUBIKEY_SECRET).unwrap();
    let plain_pin = tpm.import_key(&KeySpec { pin: Some(pin("2468")), ..KeySpec::default() }, &secret).unwrap().handle;
    let bound_pin = tpm
        .import_key(&KeySpec { pin: Some(pin("2468")), pcrs: vec![16], ..KeySpec::default() }, &secret)
        .unwrap()
        .handle;
    drop(tpm);
    let proxy = CommandLog::start(swtpm.port());
    let mut tpm = Tpm::open(&options_at(&swtpm, &proxy.tcti()).with_bus_encryption(false)).unwrap();
    for key in [plain_pin, bound_pin] {
        match tpm.challenge_with_pin(key, &[1u8; 32], Some(&pin("2468"))) {
            Err(e @ Error::PinNeedsEncryption { .. }) => assert!(e.to_string().contains("in clear"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(!proxy.commands().contains(&HMAC), "nothing was sent that carries the PIN: {:x?}", proxy.commands());
    assert!(leaks(&proxy.traffic().0, &auth_value("2468")) == 0);
}

#[test]
fn provisioning_stops_before_the_tpm_when_the_record_cannot_be_kept() {
    let swtpm = Swtpm::start();
    let mut tpm = open(&swtpm);
    import(&mut tpm, YUBIKEY_SECRET, None, Algorithm::Sha1);
    let before = tpm.persistent_handles().unwrap();
    let not_a_dir = swtpm.dir().join("file");
    std::fs::write(&not_a_dir, b"").unwrap();
    for path in [not_a_dir.join("keys.json"), "/dev/null".into(), swtpm.dir().to_path_buf()] {
        let mut tpm = Tpm::open(&TpmOptions::tcti(Some(&swtpm.tcti())).with_metadata(Metadata::at(&path))).unwrap();
        match tpm.create_key(&KeySpec::default()) {
            Err(e @ Error::Metadata { .. }) => assert!(e.to_string().contains(path.to_str().unwrap()), "{e}"),
            other => panic!("{}: {other:?}", path.display()),
        }
        assert_eq!(tpm.persistent_handles().unwrap(), before, "{}: no key left without its record", path.display());
    }
    assert!(!std::path::Path::new("/dev/null.lock").exists(), "nothing created beside a device");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null is left alone");
}
