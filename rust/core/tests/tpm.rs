//! The core against a real software TPM (swtpm through tpm2-tss): responses, key attributes,
//! persistence, enumeration, every error variant, and nothing lost on failures.
#![cfg(unix)]

mod common;

use common::*;
use hmac::{Hmac, Mac};
use keepassxc_tpm::{Algorithm, Error, KeySpec, Metadata, Origin, Secret, Tpm, TpmOptions};
use sha2::Sha256;
use swtpm_fixture::{persist_srk, tpm2, transient_objects, CommandLog, Swtpm};

#[test]
fn rfc2202_vectors_through_the_tpm() {
    let swtpm = Swtpm::start();
    let mut tpm = open(&swtpm);
    // RFC 2202 HMAC-SHA1 test cases 1, 3 and 5 (the ones with 20-byte keys). Their data is
    // shorter than 64 bytes and does not end in its padding byte, so a YubiKey slot hashes it as is.
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("0b".repeat(20).leak(), b"Hi There".to_vec(), "b617318655057264e28bc0b6fb378c8ef146be00"),
        ("aa".repeat(20).leak(), vec![0xdd; 50], "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
        ("0c".repeat(20).leak(), b"Test With Truncation".to_vec(), "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
    ];
    for (secret, data, expected) in cases {
        let key = import(&mut tpm, secret, None, Algorithm::Sha1);
        assert_eq!(hex::encode(&tpm.challenge(key, &data).unwrap()[..]), expected);
        assert!(tpm.delete_key(key).unwrap().is_none(), "the record went with the key");
    }
}

#[test]
fn responses_match_a_yubikey_slot_for_every_challenge_length() {
    let swtpm = Swtpm::start();
    let mut tpm = open(&swtpm);
    let key = import(&mut tpm, YUBIKEY_SECRET, None, Algorithm::Sha1);
    let secret = hex::decode(YUBIKEY_SECRET).unwrap();
    let mut challenges: Vec<Vec<u8>> =
        [0usize, 1, 32, 63, 64].iter().map(|&n| (0..n as u8).map(|b| b ^ 0x5a).collect()).collect();
    for run in 1..=3 {
        let mut seed: Vec<u8> = (0..32 - run).map(|b| b as u8 + 1).collect();
        seed.extend(std::iter::repeat_n(0x20, run));
        challenges.push(seed);
    }
    challenges.push(vec![0x20; 32]);
    challenges.push(vec![0x40; 64]);
    for challenge in challenges {
        let response = tpm.challenge(key, &challenge).unwrap();
        assert_eq!(response.len(), 20);
        assert_eq!(
            &response[..],
            &hmac_sha1(&secret, &reference_message(&challenge))[..],
            "challenge {}",
            hex::encode(&challenge)
        );
    }
    assert_eq!(transient_objects(&swtpm.tcti()), 0, "nothing left loaded");
}

#[test]
fn sha256_keys_give_32_byte_responses() {
    let swtpm = Swtpm::start();
    let mut tpm = open(&swtpm);
    let secret = "11".repeat(32);
    let key = import(&mut tpm, &secret, None, Algorithm::Sha256);
    let challenge = [7u8; 32];
    let mut mac = Hmac::<Sha256>::new_from_slice(&hex::decode(&secret).unwrap()).unwrap();
    mac.update(&reference_message(&challenge));
    assert_eq!(&tpm.challenge(key, &challenge).unwrap()[..], &mac.finalize().into_bytes()[..]);
    assert_eq!(tpm.key_info(key).unwrap().algorithm, Algorithm::Sha256);
}

#[test]
fn generated_keys_have_the_promised_attributes() {
    let swtpm = Swtpm::start();
    let mut tpm = open(&swtpm);
    let key = tpm.create_key(&KeySpec::default()).unwrap();
    assert_eq!(key.handle, handle(0x8100_0100), "first handle of the project range");
    assert_eq!((key.algorithm, key.origin), (Algorithm::Sha1, Origin::Generated));
    // Read back independently with tpm2-tools.
    let public = tpm2(&swtpm.tcti(), &["tpm2_readpublic", "-c", "0x81000100"]);
    let attrs = public.lines().find(|l| l.trim_start().starts_with("value:") || l.contains("fixedtpm")).unwrap_or("");
    for flag in ["fixedtpm", "fixedparent", "sensitivedataorigin", "noda", "sign"] {
        assert!(public.contains(flag), "{flag} missing in {attrs}\n{public}");
    }
    // Without a PIN: the empty policy, never its authValue (a failed policy session is never counted).
    assert!(!public.contains("userwithauth"), "{attrs}\n{public}");
    assert!(public.contains(&format!("authorization policy: {}", "0".repeat(64))), "{public}");
    assert!(public.contains("keyedhash") && public.contains("hmac") && public.contains("sha1"), "{public}");
    assert_eq!(tpm.challenge(key.handle, b"abc").unwrap().len(), 20);
    // Around the project: tpm2-tools' password authorisation is refused (TPM_RC_AUTH_UNAVAILABLE),
    // a policy session that sets nothing is accepted.
    let dir = swtpm.dir();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    std::fs::write(path("in.bin"), b"abc").unwrap();
    let hmac = |auth: &str| {
        std::process::Command::new("tpm2_hmac")
            .args(["-c", "0x81000100", "-p", auth, "-o", &path("out.bin"), &path("in.bin")])
            .env("TPM2TOOLS_TCTI", swtpm.tcti())
            .output()
            .unwrap()
    };
    let password = hmac("");
    assert!(!password.status.success(), "a password session must be refused");
    assert!(String::from_utf8_lossy(&password.stderr).contains("0x12F"), "{password:?}");
    tpm2(&swtpm.tcti(), &["tpm2_startauthsession", "--policy-session", "-S", &path("session.ctx")]);
    let policy = hmac(&format!("session:{}", path("session.ctx")));
    assert!(policy.status.success(), "{policy:?}");
    assert_eq!(std::fs::read(path("out.bin")).unwrap(), &tpm.challenge(key.handle, b"abc").unwrap()[..]);

    let imported = import(&mut tpm, YUBIKEY_SECRET, None, Algorithm::Sha1);
    assert_eq!(imported, handle(0x8100_0101));
    let public = tpm2(&swtpm.tcti(), &["tpm2_readpublic", "-c", "0x81000101"]);
    assert!(public.contains("fixedtpm") && public.contains("fixedparent") && public.contains("noda"), "{public}");
    assert!(!public.contains("sensitivedataorigin"), "an imported key's secret comes from outside:\n{public}");
}

#[test]
fn keys_survive_a_tpm_restart() {
    let mut swtpm = Swtpm::start();
    let (key, before) = {
        let mut tpm = open(&swtpm);
        let key = tpm.create_key(&KeySpec::default()).unwrap().handle;
        (key, tpm.challenge(key, &[1u8; 32]).unwrap())
    };
    swtpm.restart();
    let mut tpm = open(&swtpm);
    assert_eq!(tpm.challenge(key, &[1u8; 32]).unwrap(), before);
    assert_eq!(tpm.list_keys().unwrap().len(), 1);
}

#[test]
fn listing_skips_what_is_not_an_hmac_key() {
    let swtpm = Swtpm::start();
    persist_srk(&swtpm.tcti(), swtpm.dir());
    let mut tpm = open(&swtpm);
    let a = import(&mut tpm, YUBIKEY_SECRET, Some(0x8100_0200), Algorithm::Sha1);
    let b =
        tpm.create_key(&KeySpec { handle: None, algorithm: Algorithm::Sha256, ..KeySpec::default() }).unwrap().handle;
    let keys = tpm.list_keys().unwrap();
    let listed: Vec<(u32, i32)> = keys.iter().map(|k| (k.serial(), k.slot())).collect();
    assert_eq!(listed, vec![(b.value(), 1), (a.value(), 1)]);
    assert_eq!(keys[0].display_name(), "TPM 2.0 HMAC-SHA256 0x81000100");
    assert!(tpm.persistent_handles().unwrap().contains(&0x8100_0001), "the SRK is there, just not listed");
}

#[test]
fn tpm_commands_per_challenge_cold_and_warm() {
    let swtpm = Swtpm::start();
    let key = import(&mut open(&swtpm), YUBIKEY_SECRET, None, Algorithm::Sha1);
    let proxy = CommandLog::start(swtpm.port());
    // The direct path (sessions computed in Rust): the record pins key and SRK; the key's name is
    // read once per connection, so a stale record never sends an authorisation.
    let mut tpm = open_at(&swtpm, &proxy.tcti());
    tpm.challenge(key, &[3u8; 32]).unwrap();
    assert_eq!(
        proxy.commands(),
        vec![READ_PUBLIC, START_AUTH_SESSION, HMAC],
        "cold: the key's name, a salted session, the HMAC"
    );
    proxy.clear();
    tpm.challenge(key, &[4u8; 32]).unwrap();
    assert_eq!(proxy.commands(), vec![START_AUTH_SESSION, HMAC], "the HMAC ended its session: a new one");
    let loaded = tpm2(&swtpm.tcti(), &["tpm2_getcap", "handles-loaded-session"]);
    assert!(!loaded.contains("0x"), "no session stays loaded in the TPM: {loaded}");
    drop(tpm);
    assert!(proxy.commands().iter().all(|&c| c != FLUSH_CONTEXT), "nothing was left to flush: {:x?}", proxy.commands());

    let mut kept = Tpm::open(&options_at(&swtpm, &proxy.tcti()).with_session_reuse(true)).unwrap();
    kept.challenge(key, &[3u8; 32]).unwrap();
    proxy.clear();
    kept.challenge(key, &[4u8; 32]).unwrap();
    assert_eq!(proxy.commands(), vec![HMAC], "with the session kept, a warm challenge is the HMAC alone");
    drop(kept);
    assert_eq!(proxy.commands(), vec![HMAC, FLUSH_CONTEXT], "and the kept session is flushed at the end");

    // The ESYS path (tpm2-tss computes the session): it reads the key and the SRK first.
    let mut esys = Tpm::open(&options_at(&swtpm, &proxy.tcti()).with_direct_path(false)).unwrap();
    proxy.clear();
    esys.challenge(key, &[3u8; 32]).unwrap();
    assert_eq!(proxy.commands(), vec![READ_PUBLIC, READ_PUBLIC, START_AUTH_SESSION, HMAC], "key, SRK, session, HMAC");
    drop(esys);
    let esys_options = options_at(&swtpm, &proxy.tcti()).with_direct_path(false).with_session_reuse(true);
    let mut esys = Tpm::open(&esys_options).unwrap();
    esys.challenge(key, &[2u8; 32]).unwrap();
    proxy.clear();
    esys.challenge(key, &[3u8; 32]).unwrap();
    esys.challenge(key, &[4u8; 32]).unwrap();
    assert_eq!(proxy.commands(), vec![HMAC, HMAC], "ESYS keeps its session too");
    drop(esys);

    let mut clear = Tpm::open(&options_at(&swtpm, &proxy.tcti()).with_bus_encryption(false)).unwrap();
    proxy.clear();
    clear.challenge(key, &[3u8; 32]).unwrap();
    assert_eq!(
        proxy.commands(),
        vec![READ_PUBLIC, START_AUTH_SESSION, HMAC],
        "without encryption: ReadPublic, an unsalted policy session (the key's empty policy), the HMAC"
    );
}

#[test]
fn the_direct_path_answers_what_esys_answers() {
    let swtpm = Swtpm::start();
    let mut tpm = open(&swtpm);
    let sha1 = import(&mut tpm, YUBIKEY_SECRET, None, Algorithm::Sha1);
    let sha256 = import(&mut tpm, &"5c".repeat(32), None, Algorithm::Sha256);
    let mut esys = Tpm::open(&options_at(&swtpm, &swtpm.tcti()).with_direct_path(false)).unwrap();
    let mut challenges: Vec<Vec<u8>> =
        (0..=64).step_by(8).map(|n| (0..n as u8).map(|b| b.wrapping_mul(29)).collect()).collect();
    challenges.extend([vec![0x20; 32], [vec![7u8; 31], vec![0x20]].concat(), vec![0; 32]]);
    for rule in [keepassxc_tpm::ChallengeRule::KeePassXC, keepassxc_tpm::ChallengeRule::YubikeyManager] {
        for key in [sha1, sha256] {
            for challenge in &challenges {
                let direct = tpm.challenge_by_rule(key, challenge, None, rule).unwrap();
                let reference = esys.challenge_by_rule(key, challenge, None, rule).unwrap();
                assert_eq!(direct, reference, "{rule:?} {key} {}", hex::encode(challenge));
            }
        }
    }
    let expected = hmac_sha1(&hex::decode(YUBIKEY_SECRET).unwrap(), &reference_message(&[0x11; 32]));
    assert_eq!(&tpm.challenge(sha1, &[0x11; 32]).unwrap()[..], &expected[..], "and both what HMAC-SHA1 gives");
}

#[test]
fn the_response_never_crosses_the_bus_in_clear() {
    let swtpm = Swtpm::start();
    let key = import(&mut open(&swtpm), YUBIKEY_SECRET, None, Algorithm::Sha1);
    let proxy = CommandLog::start(swtpm.port());
    let challenges: Vec<[u8; 32]> = (0..20u8).map(|i| [i.wrapping_mul(37) | 1; 32]).collect();
    let run = |encrypted: bool| -> (usize, usize) {
        let mut tpm = Tpm::open(&options_at(&swtpm, &proxy.tcti()).with_bus_encryption(encrypted)).unwrap();
        proxy.clear();
        let responses: Vec<Vec<u8>> = challenges.iter().map(|c| tpm.challenge(key, c).unwrap().to_vec()).collect();
        let (to_tpm, from_tpm) = proxy.traffic();
        let in_clear = responses.iter().filter(|r| contains(&from_tpm, r)).count();
        let challenges_in_clear = challenges.iter().filter(|c| contains(&to_tpm, &c[..])).count();
        (in_clear, challenges_in_clear)
    };
    // The challenge (the KDF seed, stored in clear in the database header) is not encrypted.
    assert_eq!(run(true), (0, 20), "encrypted: no response readable on the bus");
    assert_eq!(run(false), (20, 20), "negative control: without encryption every response is on the bus");
}

#[test]
fn a_different_storage_key_is_refused() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    let mut tpm = open(&swtpm);
    let key = import(&mut tpm, YUBIKEY_SECRET, None, Algorithm::Sha1);
    assert!(tpm.persistent_handles().unwrap().contains(&0x8100_0001), "provisioning persisted the ECC SRK");
    tpm.challenge(key, b"ok").unwrap();
    drop(tpm);
    // Replace the SRK with another storage key, as a stand-in TPM or an interposer would present.
    tpm2(&tcti, &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", "0x81000001"]);
    let ctx = swtpm.dir().join("rsa.ctx");
    tpm2(&tcti, &["tpm2_createprimary", "-Q", "-C", "o", "-G", "rsa2048", "-c", ctx.to_str().unwrap()]);
    tpm2(&tcti, &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", ctx.to_str().unwrap(), "0x81000001"]);
    tpm2(&tcti, &["tpm2_flushcontext", "-t"]);
    let mut tpm = open(&swtpm);
    match tpm.challenge(key, b"ok") {
        Err(e @ Error::StorageKeyChanged { .. }) => {
            assert!(e.to_string().contains("different TPM"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // Without the pin (a lost metadata file) the key still works.
    std::fs::remove_file(swtpm.dir().join("keys.json")).unwrap();
    let mut tpm = open(&swtpm);
    assert_eq!(tpm.challenge(key, b"ok").unwrap().len(), 20);
}

#[test]
fn unreachable_and_unknown_tpms() {
    let mut swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    swtpm.stop();
    let started = std::time::Instant::now();
    assert!(matches!(Tpm::open(&TpmOptions::tcti(Some(&tcti))), Err(Error::NoTpm { .. })));
    assert!(started.elapsed().as_secs() < 5, "fails fast");
    assert!(matches!(Tpm::open(&TpmOptions::tcti(Some("nonsense:x"))), Err(Error::UnknownTcti { .. })));
    match Tpm::open(&TpmOptions::tcti(Some("device:/nonexistent/tpmrm0"))) {
        Err(e @ Error::NoTpm { .. }) => assert!(e.to_string().contains("does not exist"), "{e}"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn handle_errors_say_what_is_there() {
    let swtpm = Swtpm::start();
    persist_srk(&swtpm.tcti(), swtpm.dir());
    let mut tpm = open(&swtpm);
    match tpm.challenge(handle(0x8100_0001), &[0u8; 32]) {
        Err(e @ Error::NotHmacKey { .. }) => assert!(e.to_string().contains("storage key, probably the SRK"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(tpm.challenge(handle(0x8100_0150), &[0u8; 32]), Err(Error::EmptyHandle { .. })));
    assert!(matches!(tpm.key_info(handle(0x8100_0001)), Err(Error::NotHmacKey { .. })));
    assert!(matches!(tpm.delete_key(handle(0x8100_0001)), Err(Error::NotHmacKey { .. })));
    assert!(matches!(tpm.delete_key(handle(0x8100_0150)), Err(Error::EmptyHandle { .. })));
    assert!(tpm.persistent_handles().unwrap().contains(&0x8100_0001), "a refused delete removes nothing");
    assert!(matches!(tpm.challenge(handle(0x8100_0001), &[0u8; 65]), Err(Error::ChallengeTooLong { len: 65 })));
}

#[test]
fn failed_provisioning_changes_nothing() {
    let swtpm = Swtpm::start();
    persist_srk(&swtpm.tcti(), swtpm.dir());
    let mut tpm = open(&swtpm);
    let key = import(&mut tpm, YUBIKEY_SECRET, None, Algorithm::Sha1);
    let before = tpm.challenge(key, &[9u8; 32]).unwrap();

    let occupied = KeySpec { handle: Some(key), algorithm: Algorithm::Sha1, ..KeySpec::default() };
    assert!(matches!(tpm.create_key(&occupied), Err(Error::HandleOccupied { .. })));
    let srk = KeySpec { handle: Some(handle(0x8100_0001)), algorithm: Algorithm::Sha1, ..KeySpec::default() };
    match tpm.import_key(&srk, &Secret::from_hex(YUBIKEY_SECRET).unwrap()) {
        Err(e @ Error::HandleOccupied { .. }) => assert!(e.to_string().contains("SRK"), "{e}"),
        other => panic!("{other:?}"),
    }
    let short = Secret::from_hex("0102").unwrap();
    assert!(matches!(tpm.import_key(&KeySpec::default(), &short), Err(Error::BadSecret { .. })));

    assert_eq!(tpm.challenge(key, &[9u8; 32]).unwrap(), before, "the occupant is unchanged");
    assert_eq!(tpm.list_keys().unwrap().len(), 1);
    assert!(tpm.persistent_handles().unwrap().contains(&0x8100_0001));
    assert_eq!(transient_objects(&swtpm.tcti()), 0, "failures flushed what they loaded");
}

#[test]
fn a_full_tpm_says_so_and_keeps_every_key() {
    let swtpm = Swtpm::start();
    let mut tpm = open(&swtpm);
    let mut made = Vec::new();
    let error = loop {
        match tpm.create_key(&KeySpec::default()) {
            Ok(key) => made.push(key.handle),
            Err(e) => break e,
        }
        assert!(made.len() <= 256, "the project range has 256 handles");
    };
    assert!(matches!(error, Error::NoFreeHandle { .. }), "{error}");
    assert!(!made.is_empty());
    assert_eq!(tpm.list_keys().unwrap().len(), made.len(), "no key lost");
    for key in made.iter().take(3) {
        assert_eq!(tpm.challenge(*key, b"still here").unwrap().len(), 20);
    }
    assert_eq!(transient_objects(&swtpm.tcti()), 0);
}

#[test]
fn wrong_pin_then_lockout_are_reported_and_noda_keys_keep_working() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    persist_srk(&tcti, swtpm.dir());
    // A DA-protected HMAC key with a PIN, made by tpm2-tools (this project's own PIN keys come later).
    let dir = swtpm.dir().to_str().unwrap().to_owned();
    let (public, private, ctx) = (format!("{dir}/pin.pub"), format!("{dir}/pin.priv"), format!("{dir}/pin.ctx"));
    tpm2(&tcti, &["tpm2_create", "-Q", "-C", "0x81000001", "-G", "hmac", "-p", "1234", "-u", &public, "-r", &private]);
    tpm2(&tcti, &["tpm2_load", "-Q", "-C", "0x81000001", "-u", &public, "-r", &private, "-c", &ctx]);
    tpm2(&tcti, &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", &ctx, "0x81000300"]);
    tpm2(&tcti, &["tpm2_flushcontext", "-t"]);
    let mut tpm = open(&swtpm);
    let noda = import(&mut tpm, YUBIKEY_SECRET, None, Algorithm::Sha1);
    let pin_key = handle(0x8100_0300);
    // Another tool's key: we learn from its attributes that it needs a PIN, and send none without one.
    assert!(matches!(tpm.challenge(pin_key, &[1u8; 32]), Err(Error::PinRequired { .. })));
    let wrong = keepassxc_tpm::Pin::new("not the PIN").unwrap();
    let mut saw_lockout = false;
    for _ in 0..10 {
        match tpm.challenge_with_pin(pin_key, &[1u8; 32], Some(&wrong)) {
            Err(Error::AuthFailed { rc, .. }) => assert_eq!(rc & 0xFBF, 0x98E & 0xFBF),
            Err(e @ Error::Lockout { .. }) => {
                assert!(e.to_string().contains("0x00000921"), "{e}");
                saw_lockout = true;
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(saw_lockout, "swtpm locks out after a few failures");
    assert_eq!(tpm.challenge(noda, &[1u8; 32]).unwrap().len(), 20, "noDA keys are not locked out");
}

#[test]
fn a_record_of_another_key_is_an_error_not_no_record() {
    // Two TPMs (say a laptop's and a simulator) with a key at the same handle, one metadata file.
    let (a, b) = (Swtpm::start(), Swtpm::start());
    let shared = a.dir().join("shared.json");
    let connect =
        |swtpm: &Swtpm| Tpm::open(&TpmOptions::tcti(Some(&swtpm.tcti())).with_metadata(Metadata::at(&shared))).unwrap();
    let key = import(&mut connect(&a), YUBIKEY_SECRET, None, Algorithm::Sha1);
    assert_eq!(import(&mut connect(&b), YUBIKEY_SECRET, None, Algorithm::Sha1), key);
    // The record now describes b's key; a's key is a different key at the same handle, which
    // is what a stand-in TPM would present too: refused, not treated as "no record".
    assert_eq!(connect(&b).challenge(key, b"x").unwrap().len(), 20);
    match connect(&a).challenge(key, b"x") {
        Err(e @ Error::RecordMismatch { .. }) => assert!(e.to_string().contains("not the key recorded"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pcr_bound_keys_answer_only_in_the_recorded_boot_state() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    let mut tpm = open(&swtpm);
    // PCR 16 is the debug PCR: resettable, so the test can change the "boot state" and undo it.
    let spec = KeySpec { pcrs: vec![16], ..KeySpec::default() };
    let key = tpm.import_key(&spec, &Secret::from_hex(YUBIKEY_SECRET).unwrap()).unwrap();
    assert!(key.policy_bound);
    let public = tpm2(&tcti, &["tpm2_readpublic", "-c", &key.handle.to_string()]);
    assert!(!public.contains("userwithauth"), "only the policy can authorise it:\n{public}");
    let expected = hmac_sha1(&hex::decode(YUBIKEY_SECRET).unwrap(), &reference_message(&[5u8; 32]));
    assert_eq!(&tpm.challenge(key.handle, &[5u8; 32]).unwrap()[..], &expected[..]);
    assert_eq!(&tpm.challenge(key.handle, &[5u8; 32]).unwrap()[..], &expected[..], "twice in one connection");

    tpm2(&tcti, &["tpm2_pcrextend", &format!("16:sha256={}", "ab".repeat(32))]);
    match tpm.challenge(key.handle, &[5u8; 32]) {
        Err(e @ Error::PolicyFailed { .. }) => assert!(e.to_string().contains("boot state"), "{e}"),
        other => panic!("{other:?}"),
    }
    tpm2(&tcti, &["tpm2_pcrreset", "16"]);
    assert_eq!(&tpm.challenge(key.handle, &[5u8; 32]).unwrap()[..], &expected[..], "back in the recorded state");

    // Without the record of which PCRs, the error says so instead of blaming the boot state.
    std::fs::remove_file(swtpm.dir().join("keys.json")).unwrap();
    match open(&swtpm).challenge(key.handle, &[5u8; 32]) {
        Err(e @ Error::PolicyUnknown { .. }) => assert!(e.to_string().contains("does not say which"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn busy_answers_are_retried_and_endless_ones_end() {
    let swtpm = Swtpm::start();
    let key = import(&mut open(&swtpm), YUBIKEY_SECRET, None, Algorithm::Sha1);
    let proxy = CommandLog::start(swtpm.port());
    let mut tpm = open_at(&swtpm, &proxy.tcti());
    let expected = tpm.challenge(key, b"busy").unwrap();
    for (rc, name) in [(0x922, "TPM_RC_RETRY"), (0x908, "TPM_RC_YIELDED"), (0x90A, "TPM_RC_TESTING")] {
        proxy.clear();
        proxy.inject(HMAC, rc, 8);
        assert_eq!(tpm.challenge(key, b"busy").unwrap(), expected, "{name}");
        assert_eq!(proxy.commands().iter().filter(|&&c| c == HMAC).count(), 9, "{name}: 8 refused, then answered");
    }
    proxy.clear();
    proxy.inject(HMAC, 0x922, usize::MAX);
    match tpm.challenge(key, b"busy") {
        Err(e @ Error::Tpm { rc: 0x922, .. }) => assert!(e.to_string().contains("0x00000922"), "{e}"),
        other => panic!("a TPM that never stops saying RETRY must end in an error: {other:?}"),
    }
}

#[test]
fn full_transient_memory_is_reported_and_changes_nothing() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    let mut tpm = open(&swtpm);
    let key = import(&mut tpm, YUBIKEY_SECRET, None, Algorithm::Sha1);
    let before = tpm.challenge(key, b"x").unwrap();
    drop(tpm);
    let handles_before = open(&swtpm).persistent_handles().unwrap();
    // Another program (tpm2-tools, without a resource manager) fills the 3 transient slots.
    for i in 0..3 {
        let ctx = swtpm.dir().join(format!("fill{i}.ctx"));
        tpm2(&tcti, &["tpm2_createprimary", "-Q", "-C", "o", "-G", "ecc", "-c", ctx.to_str().unwrap()]);
    }
    let mut tpm = open(&swtpm);
    match tpm.create_key(&KeySpec::default()) {
        Err(e @ Error::OutOfMemory { .. }) => {
            assert!(e.to_string().contains("no room for another loaded object"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(tpm.persistent_handles().unwrap(), handles_before, "nothing added or removed");
    tpm2(&tcti, &["tpm2_flushcontext", "-t"]);
    assert_eq!(tpm.challenge(key, b"x").unwrap(), before);
}

#[test]
fn pin_keys_count_wrong_pins_and_say_how_many_tries_are_left() {
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    let mut tpm = open(&swtpm);
    let pin = keepassxc_tpm::Pin::new("2468\n").unwrap();
    let spec = KeySpec { pin: Some(pin.clone()), ..KeySpec::default() };
    let key = tpm.import_key(&spec, &Secret::from_hex(YUBIKEY_SECRET).unwrap()).unwrap();
    assert!(key.needs_pin() && !key.no_da);
    let public = tpm2(&tcti, &["tpm2_readpublic", "-c", &key.handle.to_string()]);
    assert!(!public.contains("noda"), "a PIN key is protected by the lockout:\n{public}");
    let noda = import(&mut tpm, &"22".repeat(20), None, Algorithm::Sha1);

    let expected = hmac_sha1(&hex::decode(YUBIKEY_SECRET).unwrap(), &reference_message(&[6u8; 32]));
    assert_eq!(&tpm.challenge_with_pin(key.handle, &[6u8; 32], Some(&pin)).unwrap()[..], &expected[..]);
    // Without a PIN nothing is sent: no failure is counted.
    assert!(matches!(tpm.challenge(key.handle, &[6u8; 32]), Err(Error::PinRequired { .. })));
    assert_eq!(tpm.da_status().unwrap().failures, 0);

    let wrong = keepassxc_tpm::Pin::new("0000").unwrap();
    let max = tpm.da_status().unwrap().max_failures;
    assert!(max >= 2, "swtpm allows a few failures ({max})");
    for left in (0..max).rev() {
        match tpm.challenge_with_pin(key.handle, &[6u8; 32], Some(&wrong)) {
            Err(e @ Error::AuthFailed { .. }) => {
                assert!(matches!(e, Error::AuthFailed { tries_left: Some(n), .. } if n == left), "{e}");
                if left > 0 {
                    assert!(e.to_string().contains(&format!("{left} tr")), "{e}");
                }
            }
            other => panic!("{other:?}"),
        }
    }
    match tpm.challenge_with_pin(key.handle, &[6u8; 32], Some(&pin)) {
        Err(e @ Error::Lockout { .. }) => assert!(e.to_string().contains("another try after"), "{e}"),
        other => panic!("even the right PIN waits out the lockout: {other:?}"),
    }
    assert_eq!(tpm.challenge(noda, &[6u8; 32]).unwrap().len(), 20, "keys without a PIN are noDA and keep working");

    tpm2(&tcti, &["tpm2_dictionarylockout", "-Q", "--clear-lockout"]);
    assert_eq!(&tpm.challenge_with_pin(key.handle, &[6u8; 32], Some(&pin)).unwrap()[..], &expected[..]);
}

#[test]
fn a_twin_of_a_fixed_64_byte_slot_hashes_the_whole_block() {
    let swtpm = Swtpm::start();
    let mut tpm = open(&swtpm);
    let spec = KeySpec { yubikey_mode: keepassxc_tpm::SlotMode::Fixed, ..KeySpec::default() };
    let key = tpm.import_key(&spec, &Secret::from_hex(YUBIKEY_SECRET).unwrap()).unwrap().handle;
    let record = Metadata::at(swtpm.dir().join("keys.json")).get(key).unwrap().unwrap();
    assert_eq!(record.yubikey_mode, keepassxc_tpm::SlotMode::Fixed, "kept with the key's record");
    let secret = hex::decode(YUBIKEY_SECRET).unwrap();
    let mut esys = Tpm::open(&options_at(&swtpm, &swtpm.tcti()).with_direct_path(false)).unwrap();
    for run in 0..3usize {
        // Seeds ending in 0x20 (where a variable slot would drop bytes) and one that does not.
        let mut seed: Vec<u8> = (0..32 - run).map(|b| b as u8 + 1).collect();
        seed.extend(std::iter::repeat_n(0x20, run));
        let mut block = seed.clone();
        block.resize(64, 32); // KeePassXC's PKCS#7 padding: 32 bytes of 32
        let expected = hmac_sha1(&secret, &block);
        assert_eq!(&tpm.challenge(key, &seed).unwrap()[..], &expected[..], "direct path, {run} × 0x20");
        assert_eq!(&esys.challenge(key, &seed).unwrap()[..], &expected[..], "ESYS path, {run} × 0x20");
    }
}
