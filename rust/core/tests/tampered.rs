//! A TPM whose answers are altered on the way, as by an attacker on the bus (a proxy flips or
//! cuts single responses): a challenge either gets the right response or fails with an error
//! that names the real cause. Never a wrong response, never "wrong PIN" for a key without one.
#![cfg(unix)]

mod common;

use common::*;
use keepassxc_tpm::{Algorithm, Error, Tpm};
use swtpm_fixture::{CommandLog, Swtpm, Tamper};

use swtpm_fixture::commands::{EVICT_CONTROL, GET_CAPABILITY};

#[test]
fn altered_answers_never_give_a_wrong_response_or_blame_a_pin() {
    let swtpm = Swtpm::start();
    let key = import(&mut open(&swtpm), YUBIKEY_SECRET, None, Algorithm::Sha1);
    let expected = open(&swtpm).challenge(key, &[9u8; 32]).unwrap();
    let proxy = CommandLog::start(swtpm.port());
    // (command, answers to let pass first, alteration): ReadPublic of the key, then of the SRK;
    // StartAuthSession; the HMAC itself.
    let mut cases = Vec::new();
    for skip in [0, 1] {
        for at in [11, 30, 60, 90, 120] {
            cases.push((READ_PUBLIC, skip, Tamper::Flip(at)));
        }
        cases.push((READ_PUBLIC, skip, Tamper::Truncate(40)));
    }
    for at in [11, 16, 30, 40, 47] {
        cases.push((START_AUTH_SESSION, 0, Tamper::Flip(at)));
    }
    cases.push((START_AUTH_SESSION, 0, Tamper::Truncate(20)));
    for at in [12, 20, 30, 40, 60] {
        cases.push((HMAC, 0, Tamper::Flip(at)));
    }
    cases.push((HMAC, 0, Tamper::Truncate(20)));
    let mut failures = 0;
    // Both paths: ESYS (tpm2-tss computes the session) and the direct one (computed in Rust,
    // which falls back to ESYS on any doubt).
    for direct in [false, true] {
        for &(command, skip, how) in &cases {
            proxy.clear();
            let mut tpm = Tpm::open(&options_at(&swtpm, &proxy.tcti()).with_direct_path(direct)).unwrap();
            proxy.tamper_later(command, skip, how);
            match tpm.challenge(key, &[9u8; 32]) {
                Ok(response) => assert_eq!(response, expected, "{command:#x} {how:?}: a wrong response"),
                Err(e) => {
                    failures += 1;
                    let text = e.to_string();
                    eprintln!("{command:#x} {how:?}: {text}");
                    assert!(!text.contains("wrong PIN"), "{command:#x} {how:?}: blames a PIN: {text}");
                    assert!(!text.contains('\n'), "{text}");
                }
            }
            drop(tpm);
            let leaked = swtpm_fixture::tpm2(&swtpm.tcti(), &["tpm2_getcap", "handles-loaded-session"]);
            if direct && command == HMAC {
                assert!(!leaked.contains("0x"), "{command:#x} {how:?}: the direct path left a session: {leaked}");
            } else if leaked.contains("0x") {
                // A session whose start was answered with an altered handle cannot be flushed by
                // the client (by neither path); a resource manager does at the end of the
                // connection. Free the simulator's slots.
                swtpm_fixture::tpm2(&swtpm.tcti(), &["tpm2_flushcontext", "-l"]);
            }
            assert_eq!(
                open_at(&swtpm, &proxy.tcti()).challenge(key, &[9u8; 32]).unwrap(),
                expected,
                "recovers after {how:?}"
            );
        }
    }
    assert!(failures > 10, "most alterations are caught ({failures})");
}

#[test]
fn the_direct_path_never_returns_an_altered_answer() {
    // Every byte of the HMAC answer and of the session's start, flipped in turn.
    let swtpm = Swtpm::start();
    let key = import(&mut open(&swtpm), YUBIKEY_SECRET, None, Algorithm::Sha1);
    let expected = open(&swtpm).challenge(key, &[9u8; 32]).unwrap();
    let proxy = CommandLog::start(swtpm.port());
    for command in [START_AUTH_SESSION, HMAC] {
        for at in 0..80 {
            proxy.clear();
            let mut tpm = open_at(&swtpm, &proxy.tcti());
            proxy.tamper(command, Tamper::Flip(at));
            if let Ok(response) = tpm.challenge(key, &[9u8; 32]) {
                assert_eq!(response, expected, "{command:#x} byte {at}: a wrong response");
            }
            drop(tpm);
            if swtpm_fixture::tpm2(&swtpm.tcti(), &["tpm2_getcap", "handles-loaded-session"]).contains("0x") {
                swtpm_fixture::tpm2(&swtpm.tcti(), &["tpm2_flushcontext", "-l"]);
            }
        }
    }
}

#[test]
fn a_session_the_tpm_may_have_ended_is_not_flushed() {
    // The HMAC succeeded in the TPM (which ended its session, the handle now free for another
    // client) but its answer is rejected here: flushing that handle could end another client's
    // session. A kept session stays ours whatever the answer, and is flushed.
    let swtpm = Swtpm::start();
    let key = import(&mut open(&swtpm), YUBIKEY_SECRET, None, Algorithm::Sha1);
    let expected = open(&swtpm).challenge(key, &[9u8; 32]).unwrap();
    let proxy = CommandLog::start(swtpm.port());
    for keep in [false, true] {
        let mut tpm = Tpm::open(&options_at(&swtpm, &proxy.tcti()).with_session_reuse(keep)).unwrap();
        tpm.challenge(key, &[8u8; 32]).unwrap();
        proxy.clear();
        // The last byte of the answer: the TPM's response HMAC.
        proxy.tamper(HMAC, Tamper::Flip(usize::MAX));
        assert_eq!(tpm.challenge(key, &[9u8; 32]).unwrap(), expected, "the ESYS path answers instead");
        let commands = proxy.commands();
        let after_hmac = commands.iter().position(|&c| c == HMAC).map(|i| commands.get(i + 1));
        if keep {
            assert_eq!(after_hmac, Some(Some(&FLUSH_CONTEXT)), "the kept session is ours: {commands:x?}");
        } else {
            assert_ne!(after_hmac, Some(Some(&FLUSH_CONTEXT)), "a session the TPM ended: {commands:x?}");
        }
        drop(tpm);
        let loaded = swtpm_fixture::tpm2(&swtpm.tcti(), &["tpm2_getcap", "handles-loaded-session"]);
        assert!(!loaded.contains("0x"), "keep={keep}: nothing left loaded: {loaded}");
    }
}

#[test]
fn a_malformed_key_list_is_an_error_not_an_empty_list() {
    let swtpm = Swtpm::start();
    import(&mut open(&swtpm), YUBIKEY_SECRET, None, Algorithm::Sha1);
    let proxy = CommandLog::start(swtpm.port());
    for cut in [10, 15, 19, 23] {
        let mut tpm = open_at(&swtpm, &proxy.tcti());
        proxy.tamper(GET_CAPABILITY, Tamper::Truncate(cut));
        match tpm.list_keys() {
            Ok(keys) => assert_eq!(keys.len(), 1, "cut at {cut}: the key must be listed or the listing fail"),
            Err(e @ (Error::Tpm { .. } | Error::Wrapper { .. } | Error::BadAnswer { .. })) => {
                assert!(e.to_string().contains("listing"), "{e}")
            }
            Err(e) => panic!("cut at {cut}: {e:?}"),
        }
    }
}

#[test]
fn a_lost_answer_to_persisting_does_not_report_a_failure_that_did_not_happen() {
    let swtpm = Swtpm::start();
    let proxy = CommandLog::start(swtpm.port());
    let mut tpm = open_at(&swtpm, &proxy.tcti());
    tpm.create_key(&keepassxc_tpm::KeySpec::default()).unwrap(); // the SRK is persisted now too
    proxy.clear();
    proxy.tamper(EVICT_CONTROL, Tamper::Lose);
    let key = import(&mut tpm, YUBIKEY_SECRET, None, Algorithm::Sha1);
    assert_eq!(proxy.armed(), 0, "the answer to EvictControl was lost");
    let after: Vec<u32> = proxy.commands().into_iter().skip_while(|&c| c != EVICT_CONTROL).collect();
    assert_eq!(after[..2], [EVICT_CONTROL, READ_PUBLIC], "the handle was looked at before deciding");
    let expected = hmac_sha1(&hex::decode(YUBIKEY_SECRET).unwrap(), &reference_message(&[3u8; 32]));
    assert_eq!(&open(&swtpm).challenge(key, &[3u8; 32]).unwrap()[..], &expected[..], "persisted, recorded, usable");
}
