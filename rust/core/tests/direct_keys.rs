//! Key files on the direct path alone ([`KeyFileTpm`], all the Windows build has), on Linux against
//! swtpm and checked against the ESYS path ([`Tpm`]) on the same TPM and record file: a key file
//! made by either answers the same in the other, under the persistent SRK and under the standard
//! primary (which only works when both build the same template byte for byte); an imported secret
//! answers the YubiKey reference vectors and never crosses the bus in clear; a swapped storage key
//! is refused before anything is loaded under it.
#![cfg(unix)]

use keepassxc_tpm::{Error, KeyFileTpm, KeySpec, Metadata, Secret, Tcti, Tpm, TpmOptions};
use swtpm_fixture::commands::{by_client, LOAD};
use swtpm_fixture::yubikey::{reference_message, yubikey_hmac, YUBIKEY_SECRET};
use swtpm_fixture::CommandLog;
use swtpm_fixture::{lockout_counter, persist_srk, tpm2, Swtpm};

fn records(swtpm: &Swtpm) -> Metadata {
    Metadata::at(swtpm.dir().join("keys.json"))
}

fn direct(swtpm: &Swtpm, tcti: &str) -> KeyFileTpm {
    KeyFileTpm::open(&Tcti::parse(tcti).unwrap(), records(swtpm)).unwrap()
}

fn esys(swtpm: &Swtpm) -> Tpm {
    Tpm::open(&TpmOptions::tcti(Some(&swtpm.tcti())).with_metadata(records(swtpm))).unwrap()
}

const CHALLENGES: [&[u8]; 4] = [b"", b"x", &[0x20; 63], &[0x41; 64]];

#[test]
fn an_imported_key_file_answers_the_reference_vectors_in_both_paths() {
    for with_srk in [true, false] {
        let swtpm = Swtpm::start();
        if with_srk {
            persist_srk(&swtpm.tcti(), swtpm.dir());
        }
        let path = swtpm.dir().join("twin.tss");
        let secret = Secret::from_hex(YUBIKEY_SECRET).unwrap();
        let key = direct(&swtpm, &swtpm.tcti()).create(&KeySpec::default(), Some(&secret), &path).unwrap();
        assert!(key.handle.is_file_key() && key.empty_policy && key.no_da, "{key:?}");
        let file = keepassxc_tpm::keyfile::KeyFile::read(&path).unwrap();
        assert_eq!(file.parent, if with_srk { 0x8100_0001 } else { 0x4000_0001 });
        for challenge in CHALLENGES {
            let expected = yubikey_hmac(&reference_message(challenge));
            assert_eq!(&direct(&swtpm, &swtpm.tcti()).challenge(&path, challenge).unwrap()[..], &expected[..]);
            // The ESYS path loads it from the same record, under the same parent.
            assert_eq!(&esys(&swtpm).challenge(key.handle, challenge).unwrap()[..], &expected[..], "srk {with_srk}");
        }
        assert_eq!(tpm2(&swtpm.tcti(), &["tpm2_getcap", "handles-transient"]).trim(), "", "all flushed");
    }
}

#[test]
fn a_key_file_made_by_the_esys_path_answers_on_the_direct_path() {
    for with_srk in [true, false] {
        let swtpm = Swtpm::start();
        if with_srk {
            persist_srk(&swtpm.tcti(), swtpm.dir());
        }
        let path = swtpm.dir().join("made-on-linux.tss");
        let made = esys(&swtpm).create_file_key(&KeySpec::default(), &path).unwrap();
        let mut tpm = direct(&swtpm, &swtpm.tcti());
        for challenge in CHALLENGES {
            let response = tpm.challenge(&path, challenge).unwrap();
            assert_eq!(&response[..], &esys(&swtpm).challenge(made.handle, challenge).unwrap()[..]);
            assert_eq!(response.len(), 20);
        }
    }
}

#[test]
fn the_secret_never_crosses_the_bus_in_clear_nor_the_response() {
    let swtpm = Swtpm::start();
    let proxy = CommandLog::start(swtpm.port());
    let path = swtpm.dir().join("twin.tss");
    let secret = hex::decode(YUBIKEY_SECRET).unwrap();
    let mut tpm = direct(&swtpm, &proxy.tcti());
    tpm.create(&KeySpec::default(), Some(&Secret::from_hex(YUBIKEY_SECRET).unwrap()), &path).unwrap();
    let response = tpm.challenge(&path, b"abc").unwrap();
    let (to_tpm, from_tpm) = proxy.traffic();
    let contains = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    assert!(!to_tpm.is_empty() && !contains(&to_tpm, &secret), "the secret crossed to the TPM in clear");
    assert!(!contains(&from_tpm, &response), "the response crossed from the TPM in clear");
}

#[test]
fn a_swapped_storage_key_is_refused_before_any_load() {
    let swtpm = Swtpm::start();
    persist_srk(&swtpm.tcti(), swtpm.dir());
    let path = swtpm.dir().join("k.tss");
    direct(&swtpm, &swtpm.tcti()).create(&KeySpec::default(), None, &path).unwrap();
    // Another storage key at 0x81000001, DA-protected (an attacker's): no Load may be tried under it.
    let tcti = swtpm.tcti();
    let ctx = swtpm.dir().join("other.ctx");
    tpm2(&tcti, &["tpm2_evictcontrol", "-C", "o", "-c", "0x81000001"]);
    tpm2(&tcti, &["tpm2_createprimary", "-Q", "-C", "o", "-G", "ecc", "-p", "guess", "-c", ctx.to_str().unwrap()]);
    tpm2(&tcti, &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", ctx.to_str().unwrap(), "0x81000001"]);
    tpm2(&tcti, &["tpm2_flushcontext", "-t"]);
    let proxy = CommandLog::start(swtpm.port());
    let refused = direct(&swtpm, &proxy.tcti()).challenge(&path, b"x").unwrap_err();
    assert!(matches!(refused, Error::StorageKeyChanged { .. }), "{refused}");
    assert!(!by_client(&proxy.commands()).contains(&LOAD), "{:?}", proxy.commands());
    assert_eq!(lockout_counter(&tcti), 0);
}

#[test]
fn after_a_tpm_clear_a_key_under_the_standard_primary_is_refused_before_any_load() {
    // The standard primary comes from the owner seed: TPM2_Clear (driven here by tpm2-tools, as
    // a new owner would) makes CreatePrimary give another key, whose name is not the pinned one.
    let swtpm = Swtpm::start();
    let path = swtpm.dir().join("k.tss");
    direct(&swtpm, &swtpm.tcti()).create(&KeySpec::default(), None, &path).unwrap();
    assert_eq!(keepassxc_tpm::keyfile::KeyFile::read(&path).unwrap().parent, 0x4000_0001);
    tpm2(&swtpm.tcti(), &["tpm2_clear", "-c", "p"]);
    let proxy = CommandLog::start(swtpm.port());
    let refused = direct(&swtpm, &proxy.tcti()).challenge(&path, b"x").unwrap_err();
    assert!(matches!(refused, Error::StorageKeyChanged { .. }), "{refused}");
    assert!(!by_client(&proxy.commands()).contains(&LOAD), "{:?}", proxy.commands());
    assert_eq!(tpm2(&swtpm.tcti(), &["tpm2_getcap", "handles-transient"]).trim(), "", "the primary flushed");
}

#[test]
fn unrecorded_and_hostile_files_are_refused_with_what_is_wrong() {
    let swtpm = Swtpm::start();
    let path = swtpm.dir().join("k.tss");
    let mut tpm = direct(&swtpm, &swtpm.tcti());
    tpm.create(&KeySpec::default(), None, &path).unwrap();
    let copy = swtpm.dir().join("copy.tss");
    std::fs::copy(&path, &copy).unwrap();
    let elsewhere =
        KeyFileTpm::open(&Tcti::parse(&swtpm.tcti()).unwrap(), Metadata::at(swtpm.dir().join("other.json")));
    let refused = elsewhere.unwrap().challenge(&copy, b"x").unwrap_err().to_string();
    assert!(refused.contains("no record of this key"), "{refused}");
    std::fs::write(&copy, "not a key").unwrap();
    assert!(tpm.challenge(&copy, b"x").unwrap_err().to_string().contains("TSS2 PRIVATE KEY"));
    assert!(matches!(tpm.challenge(&path, &[0; 65]), Err(Error::ChallengeTooLong { len: 65 })));
    let exists = tpm.create(&KeySpec::default(), None, &path).unwrap_err().to_string();
    assert!(exists.contains("exists already"), "{exists}");
    // Label, list, delete: the record file alone.
    let at = records(&swtpm);
    assert_eq!(KeyFileTpm::label_in(&at, &path, Some("laptop")).unwrap().label.as_deref(), Some("laptop"));
    let listed = KeyFileTpm::list_in(&at).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1.as_deref(), Some(path.as_path()));
    assert_eq!(KeyFileTpm::delete_in(&at, &path).unwrap(), None);
    assert!(!path.exists() && KeyFileTpm::list_in(&at).unwrap().is_empty());
}
