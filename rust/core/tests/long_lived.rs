//! A process that keeps its connection for hours (KeePassXC's backend, the Python provider, the
//! PC/SC driver inside pcscd) never spends a dictionary-attack try on a key that was put at a
//! handle after it read the handle: the key's owner deletes the key it served and makes one with a
//! PIN, which takes the same (first free) handle, and the old connection is asked again.
//!
//! Each case uses the new key correctly once first (libtpms answers the first DA-protected
//! authorisation after its start with TPM_RC_RETRY and does not count it), reads
//! TPM2_PT_LOCKOUT_COUNTER with tpm2-tools around the project, and reads the wire: no answer says
//! "authorisation failed" (which the TPM counts), and every TPM2_HMAC after the swap, if any, went
//! in a policy session without PolicyAuthValue (which the TPM never counts).
#![cfg(unix)]

mod common;

use common::*;
use keepassxc_tpm::{Algorithm, Error, KeySpec, Metadata, PersistentHandle, Pin, Secret, Tpm, TpmOptions};
use swtpm_fixture::{lockout_counter, persist_authvalue_key, tpm2, CommandLog, Swtpm};

const AT: u32 = 0x8100_0100;
const NEW_PIN: &str = "2468";

fn pin(text: &str) -> Pin {
    Pin::new(text).unwrap()
}

/// The paths a long-lived connection may take: the direct path (the default) and ESYS alone.
fn connections(swtpm: &Swtpm, proxy: &CommandLog) -> [(&'static str, TpmOptions); 2] {
    [
        ("direct path", options_at(swtpm, &proxy.tcti())),
        ("ESYS path", options_at(swtpm, &proxy.tcti()).with_direct_path(false)),
    ]
}

/// The key's owner deletes the key at `AT` and makes one with a PIN there (the first free handle),
/// recorded in `metadata`, then uses it correctly once.
fn replace_with_pin_key(swtpm: &Swtpm, metadata: &str) {
    tpm2(&swtpm.tcti(), &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", &format!("0x{AT:08x}")]);
    let options = TpmOptions::tcti(Some(&swtpm.tcti())).with_metadata(Metadata::at(swtpm.dir().join(metadata)));
    let mut owner = Tpm::open(&options).unwrap();
    let spec = KeySpec { pin: Some(pin(NEW_PIN)), ..KeySpec::default() };
    let key = owner.import_key(&spec, &Secret::from_hex(&"22".repeat(20)).unwrap()).unwrap();
    assert_eq!(key.handle, handle(AT), "the first free handle is the deleted key's");
    assert_eq!(owner.challenge_with_pin(key.handle, &[9u8; 32], Some(&pin(NEW_PIN))).unwrap().len(), 20);
}

/// What the wire shows after `proxy.clear()`: no counted failure and no authorisation that could be.
fn assert_nothing_counted(swtpm: &Swtpm, proxy: &CommandLog, what: &str) {
    for (command, rc) in proxy.answers() {
        let format1 = rc & 0x80 != 0;
        let code = if format1 { rc & 0xBF } else { rc & 0x97F };
        assert!(
            !matches!(code, 0x8E | 0xA2) && rc != 0x921,
            "{what}: command 0x{command:X} was answered 0x{rc:03X}, a counted authorisation failure"
        );
    }
    for session in proxy.hmac_sessions() {
        assert!(
            session.is_some_and(|s| s >> 24 == 0x03),
            "{what}: an HMAC went out in session {session:x?}, not a policy session"
        );
    }
    assert_eq!(lockout_counter(&swtpm.tcti()), 0, "{what}: TPM2_PT_LOCKOUT_COUNTER unchanged");
}

/// A key without a PIN made now (the empty policy): the stale connection's one HMAC goes out in its
/// kept policy session, fails without being counted, and the key is read again: it needs a PIN now
/// (its owner's record says so) or is not the recorded one (another user's record).
#[test]
fn a_key_replaced_under_a_long_lived_connection_costs_no_try() {
    for record_of_new_key in ["keys.json", "someone-else.json"] {
        let swtpm = Swtpm::start();
        let proxy = CommandLog::start(swtpm.port());
        let mut first = open(&swtpm);
        let key = import(&mut first, YUBIKEY_SECRET, Some(AT), Algorithm::Sha1);
        assert!(first.key_info(key).unwrap().empty_policy, "a new key without a PIN has the empty policy");
        drop(first);
        let mut kept: Vec<(&str, Tpm)> =
            connections(&swtpm, &proxy).map(|(what, options)| (what, Tpm::open(&options).unwrap())).into();
        let expected = hmac_sha1(&hex::decode(YUBIKEY_SECRET).unwrap(), &reference_message(&[5u8; 32]));
        for (what, tpm) in &mut kept {
            // As KeePassXC's unlock dialog and the Python provider do: the key is listed (or looked
            // up) first.
            assert_eq!(tpm.list_keys().unwrap().len(), 1, "{what}");
            assert!(tpm.key_info(key).unwrap().empty_policy, "{what}");
            assert_eq!(&tpm.challenge(key, &[5u8; 32]).unwrap()[..], &expected[..], "{what}");
            assert_eq!(&tpm.challenge(key, &[5u8; 32]).unwrap()[..], &expected[..], "{what}, warm");
        }

        replace_with_pin_key(&swtpm, record_of_new_key);
        proxy.clear();
        for (what, tpm) in &mut kept {
            for attempt in 0..3 {
                match (record_of_new_key, tpm.challenge(key, &[5u8; 32])) {
                    ("keys.json", Err(Error::PinRequired { .. })) => {}
                    (_, Err(e @ Error::RecordMismatch { .. })) if record_of_new_key != "keys.json" => {
                        assert!(e.to_string().contains(&key.to_string()), "{e}")
                    }
                    (_, other) => panic!("{what}, {record_of_new_key}, attempt {attempt}: {other:?}"),
                }
            }
        }
        assert_nothing_counted(&swtpm, &proxy, record_of_new_key);
    }
}

/// A key in the form made before the empty policy (its empty authValue authorises it): a
/// long-lived connection reads the name at the handle before every authorisation, so after the
/// swap no HMAC goes out at all.
#[test]
fn a_key_of_the_old_form_is_read_again_before_every_authorisation() {
    let swtpm = Swtpm::start();
    persist_authvalue_key(&swtpm.tcti(), swtpm.dir(), AT);
    let proxy = CommandLog::start(swtpm.port());
    let key = handle(AT);
    let mut kept: Vec<(&str, Tpm)> =
        connections(&swtpm, &proxy).map(|(what, options)| (what, Tpm::open(&options).unwrap())).into();
    for (what, tpm) in &mut kept {
        let info = tpm.checked_key(key).unwrap();
        assert!(!info.empty_policy && info.authorisation_may_count() && info.no_da, "{what}: {info:?}");
        let first = tpm.challenge(key, &[5u8; 32]).unwrap();
        assert_eq!(first.len(), 20, "{what}: HMAC-SHA1");
        assert_eq!(tpm.challenge(key, &[5u8; 32]).unwrap(), first, "{what}");
    }

    replace_with_pin_key(&swtpm, "keys.json");
    proxy.clear();
    for (what, tpm) in &mut kept {
        assert!(matches!(tpm.challenge(key, &[5u8; 32]), Err(Error::PinRequired { .. })), "{what}");
    }
    assert!(!proxy.commands().contains(&HMAC), "no authorisation went out: {:x?}", proxy.commands());
    assert_nothing_counted(&swtpm, &proxy, "old form");
}

/// A key with a PIN: its authorisation always counts, so its name is read before each one. When
/// another key with a PIN takes its handle, the old PIN is never tried on it.
#[test]
fn a_pin_is_never_tried_on_the_key_that_replaced_its_own() {
    let swtpm = Swtpm::start();
    let proxy = CommandLog::start(swtpm.port());
    let mut kept: Vec<(&str, Tpm)> =
        connections(&swtpm, &proxy).map(|(what, options)| (what, Tpm::open(&options).unwrap())).into();
    let spec = KeySpec { handle: Some(handle(AT)), pin: Some(pin("1357")), ..KeySpec::default() };
    let key: PersistentHandle = kept[0].1.import_key(&spec, &Secret::from_hex(YUBIKEY_SECRET).unwrap()).unwrap().handle;
    for (what, tpm) in &mut kept {
        assert_eq!(tpm.challenge_with_pin(key, &[5u8; 32], Some(&pin("1357"))).unwrap().len(), 20, "{what}");
    }

    // Recorded by another user: the long-lived connections' records name the old key.
    replace_with_pin_key(&swtpm, "someone-else.json");
    proxy.clear();
    for (what, tpm) in &mut kept {
        match tpm.challenge_with_pin(key, &[5u8; 32], Some(&pin("1357"))) {
            Err(Error::RecordMismatch { .. }) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(!proxy.commands().contains(&HMAC), "the old PIN was never tried: {:x?}", proxy.commands());
    assert_nothing_counted(&swtpm, &proxy, "PIN key");
}
