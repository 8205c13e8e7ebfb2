//! A TSS2 PRIVATE KEY file holds what the format says (issue 31): an HMAC key imported by tpm2-tools
//! under the SRK from a known secret (`tpm2_import`, HMAC-SHA256), put into a file by [`KeyFile`]
//! and read back from it, is loaded by tpm2-tools (`tpm2_load`, parent the SRK) from the parts the
//! file gave back, and its `tpm2_hmac` answers exactly the HMAC of that secret, computed here in
//! software. A file of another TPM's key does not load.
#![cfg(unix)]

use hmac::{Hmac, Mac};
use keepassxc_tpm::keyfile::KeyFile;
use swtpm_fixture::{persist_srk, tpm2, Swtpm};

const SECRET: &[u8] = b"0123456789:;<=>?@ABC";

/// Imports SECRET as an HMAC-SHA256 key under the SRK with tpm2-tools: its TPM2B_PUBLIC and
/// TPM2B_PRIVATE.
fn made_by_tpm2_tools(swtpm: &Swtpm) -> (Vec<u8>, Vec<u8>) {
    let tcti = swtpm.tcti();
    let dir = swtpm.dir();
    persist_srk(&tcti, dir);
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    std::fs::write(path("secret.bin"), SECRET).unwrap();
    let (secret, public, private) = (path("secret.bin"), path("made.pub"), path("made.priv"));
    let import = ["tpm2_import", "-Q", "-C", "0x81000001", "-G", "hmac", "-g", "sha256", "-i", &secret];
    tpm2(&tcti, &[&import[..], &["-u", &public, "-r", &private]].concat());
    (std::fs::read(path("made.pub")).unwrap(), std::fs::read(path("made.priv")).unwrap())
}

/// tpm2-tools' HMAC of `message` with the key the file at `key_file` holds, loaded under the SRK.
fn tpm2_tools_hmac(swtpm: &Swtpm, key_file: &std::path::Path, message: &[u8]) -> Result<Vec<u8>, String> {
    let tcti = swtpm.tcti();
    let dir = swtpm.dir();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let key = KeyFile::read(key_file).map_err(|e| e.to_string())?;
    std::fs::write(path("back.pub"), &key.public).unwrap();
    std::fs::write(path("back.priv"), &key.private).unwrap();
    std::fs::write(path("message.bin"), message).unwrap();
    let parent = format!("0x{:08x}", key.parent);
    let load = std::process::Command::new("tpm2_load")
        .args(["-Q", "-C", &parent, "-u", &path("back.pub"), "-r", &path("back.priv"), "-c", &path("back.ctx")])
        .env("TPM2TOOLS_TCTI", &tcti)
        .env("TSS2_LOG", "all+none")
        .output()
        .unwrap();
    if !load.status.success() {
        return Err(String::from_utf8_lossy(&load.stderr).into_owned());
    }
    tpm2(&tcti, &["tpm2_hmac", "-c", &path("back.ctx"), "-g", "sha256", "-o", &path("mac.bin"), &path("message.bin")]);
    tpm2(&tcti, &["tpm2_flushcontext", "-t"]);
    Ok(std::fs::read(path("mac.bin")).unwrap())
}

#[test]
fn tpm2_tools_loads_the_key_from_the_file_and_it_answers_the_secrets_hmac() {
    let swtpm = Swtpm::start();
    let (public, private) = made_by_tpm2_tools(&swtpm);
    let file = swtpm.dir().join("key.tss");
    KeyFile { empty_auth: true, parent: 0x8100_0001, public, private }.write(&file).unwrap();
    assert!(std::fs::read_to_string(&file).unwrap().starts_with("-----BEGIN TSS2 PRIVATE KEY-----\n"));
    for message in [&b""[..], b"x", &[0x5A; 64]] {
        let mut expected = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
        expected.update(message);
        assert_eq!(tpm2_tools_hmac(&swtpm, &file, message).unwrap(), expected.finalize().into_bytes().to_vec());
    }
}

#[test]
fn another_tpms_file_does_not_load() {
    let (first, second) = (Swtpm::start(), Swtpm::start());
    let (public, private) = made_by_tpm2_tools(&first);
    let file = first.dir().join("key.tss");
    KeyFile { empty_auth: true, parent: 0x8100_0001, public, private }.write(&file).unwrap();
    persist_srk(&second.tcti(), second.dir());
    let refused = tpm2_tools_hmac(&second, &file, b"x").unwrap_err();
    assert!(refused.contains("0x") || refused.contains("rror"), "{refused}");
}

mod file_keys {
    use keepassxc_tpm::keyfile::KeyFile;
    use keepassxc_tpm::{KeySpec, Metadata, Secret, Tpm, TpmOptions};
    use swtpm_fixture::yubikey::{reference_message, yubikey_hmac, YUBIKEY_SECRET};
    use swtpm_fixture::{persist_srk, tpm2, Swtpm};

    fn open(swtpm: &Swtpm) -> Tpm {
        let options = TpmOptions::tcti(Some(&swtpm.tcti())).with_metadata(Metadata::at(swtpm.dir().join("keys.json")));
        Tpm::open(&options).unwrap()
    }

    fn persistent(swtpm: &Swtpm) -> String {
        tpm2(&swtpm.tcti(), &["tpm2_getcap", "handles-persistent"])
    }

    /// A key imported into a file answers what its YubiKey twin answers, from this connection and
    /// from a new one (loaded from its record), and takes no persistent slot; tpm2-tools loads the
    /// file; deleting it removes the file and the record; nothing stays loaded in the TPM.
    #[test]
    fn a_key_in_a_file_answers_like_its_yubikey_twin_and_takes_no_slot() {
        let swtpm = Swtpm::start();
        persist_srk(&swtpm.tcti(), swtpm.dir());
        let before = persistent(&swtpm);
        let path = swtpm.dir().join("twin.tss");
        let secret = Secret::from_hex(YUBIKEY_SECRET).unwrap();
        let key = open(&swtpm).import_file_key(&KeySpec::default(), &secret, &path).unwrap();
        assert!(key.handle.is_file_key(), "{}", key.handle);
        assert_eq!(persistent(&swtpm), before, "no persistent handle taken");
        for challenge in [&b""[..], b"x", &[0x20; 63], &[0x41; 64]] {
            let mut tpm = open(&swtpm);
            assert_eq!(
                &tpm.challenge(key.handle, challenge).unwrap()[..],
                &yubikey_hmac(&reference_message(challenge))[..]
            );
            assert_eq!(tpm.file_key_serial(&path).unwrap(), key.handle);
        }
        assert_eq!(tpm2(&swtpm.tcti(), &["tpm2_getcap", "handles-transient"]).trim(), "", "flushed on close");
        let file = KeyFile::read(&path).unwrap();
        assert!(file.empty_auth);
        assert_eq!(file.parent, 0x8100_0001, "made under the persistent SRK");
        assert_eq!(open(&swtpm).delete_file_key(key.handle).unwrap(), None);
        assert!(!path.exists());
        assert!(open(&swtpm).challenge(key.handle, b"x").is_err(), "no record, nothing to load");
    }

    /// The file `import --key-file` writes holds what the format says: tpm2-tools loads the key from
    /// its two parts under the SRK (`tpm2_load -C 0x81000001`) and, through a policy session (the
    /// key's empty policy), its `tpm2_hmac` answers the secret's HMAC, as the project does.
    #[test]
    fn tpm2_tools_loads_a_key_file_the_project_wrote() {
        let swtpm = Swtpm::start();
        persist_srk(&swtpm.tcti(), swtpm.dir());
        let path = swtpm.dir().join("twin.tss");
        let secret = Secret::from_hex(YUBIKEY_SECRET).unwrap();
        open(&swtpm).import_file_key(&KeySpec::default(), &secret, &path).unwrap();
        let file = KeyFile::read(&path).unwrap();
        let dir = swtpm.dir();
        let at = |name: &str| dir.join(name).to_str().unwrap().to_owned();
        std::fs::write(at("k.pub"), &file.public).unwrap();
        std::fs::write(at("k.priv"), &file.private).unwrap();
        std::fs::write(at("m.bin"), b"a message").unwrap();
        let tcti = swtpm.tcti();
        let parent = format!("0x{:08x}", file.parent);
        tpm2(&tcti, &["tpm2_load", "-Q", "-C", &parent, "-u", &at("k.pub"), "-r", &at("k.priv"), "-c", &at("k.ctx")]);
        tpm2(&tcti, &["tpm2_startauthsession", "--policy-session", "-S", &at("s.ctx")]);
        let session = format!("session:{}", at("s.ctx"));
        tpm2(
            &tcti,
            &["tpm2_hmac", "-c", &at("k.ctx"), "-p", &session, "-g", "sha1", "-o", &at("mac.bin"), &at("m.bin")],
        );
        tpm2(&tcti, &["tpm2_flushcontext", "-t"]);
        tpm2(&tcti, &["tpm2_flushcontext", "-l"]);
        let expected = swtpm_fixture::yubikey::hmac_sha1(&hex::decode(YUBIKEY_SECRET).unwrap(), b"a message");
        assert_eq!(std::fs::read(at("mac.bin")).unwrap(), expected);
    }

    /// Fifty keys in files on a TPM whose persistent memory holds only the SRK answer, and the
    /// count of persistent handles does not change.
    #[test]
    fn fifty_key_files_all_answer() {
        let swtpm = Swtpm::start();
        persist_srk(&swtpm.tcti(), swtpm.dir());
        let before = persistent(&swtpm);
        let mut tpm = open(&swtpm);
        let keys: Vec<_> = (0..50)
            .map(|i| tpm.create_file_key(&KeySpec::default(), &swtpm.dir().join(format!("k{i}.tss"))).unwrap().handle)
            .collect();
        drop(tpm);
        let mut tpm = open(&swtpm);
        let responses: std::collections::HashSet<Vec<u8>> =
            keys.iter().map(|&h| tpm.challenge(h, b"same challenge").unwrap().to_vec()).collect();
        assert_eq!(responses.len(), 50, "fifty different keys");
        assert_eq!(persistent(&swtpm), before);
    }

    /// Without a persistent SRK the key is made under the standard storage primary (parent
    /// 0x40000001) and loads there again; a key file that exists is never overwritten.
    #[test]
    fn under_the_standard_primary_and_never_over_a_file() {
        let swtpm = Swtpm::start();
        let path = swtpm.dir().join("k.tss");
        std::fs::write(&path, "mine").unwrap();
        let refused = open(&swtpm).create_file_key(&KeySpec::default(), &path).unwrap_err();
        assert!(refused.to_string().contains("exists already"), "{refused}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
        std::fs::remove_file(&path).unwrap();
        let key = open(&swtpm).create_file_key(&KeySpec::default(), &path).unwrap();
        assert_eq!(open(&swtpm).challenge(key.handle, b"x").unwrap().len(), 20);
    }
}

mod file_keys_with_policies {
    use keepassxc_tpm::{Error, KeySpec, Metadata, Pin, Secret, Tpm, TpmOptions};
    use swtpm_fixture::yubikey::{reference_message, yubikey_hmac, YUBIKEY_SECRET};
    use swtpm_fixture::{tpm2, Swtpm};

    fn open(swtpm: &Swtpm) -> Tpm {
        let options = TpmOptions::tcti(Some(&swtpm.tcti())).with_metadata(Metadata::at(swtpm.dir().join("keys.json")));
        Tpm::open(&options).unwrap()
    }

    /// A key file with a PIN asks for it, refuses a wrong one (counted, as for any PIN key), and
    /// answers with the right one; a key file bound to PCR 16 answers until the PCR changes.
    #[test]
    fn a_pin_and_a_pcr_policy_hold_for_key_files() {
        let swtpm = Swtpm::start();
        let secret = Secret::from_hex(YUBIKEY_SECRET).unwrap();
        let pin = |text: &str| Pin::new(text).unwrap();
        let spec = KeySpec { pin: Some(pin("2468")), ..KeySpec::default() };
        let key = open(&swtpm).import_file_key(&spec, &secret, &swtpm.dir().join("pin.tss")).unwrap().handle;
        let expected = yubikey_hmac(&reference_message(b"x"));
        assert!(matches!(open(&swtpm).challenge(key, b"x"), Err(Error::PinRequired { .. })));
        assert_eq!(&open(&swtpm).challenge_with_pin(key, b"x", Some(&pin("2468"))).unwrap()[..], &expected[..]);
        assert!(matches!(
            open(&swtpm).challenge_with_pin(key, b"x", Some(&pin("1357"))),
            Err(Error::AuthFailed { .. })
        ));

        let spec = KeySpec { pcrs: vec![16], ..KeySpec::default() };
        let bound = open(&swtpm).import_file_key(&spec, &secret, &swtpm.dir().join("pcr.tss")).unwrap().handle;
        assert_eq!(&open(&swtpm).challenge(bound, b"x").unwrap()[..], &expected[..]);
        tpm2(&swtpm.tcti(), &["tpm2_pcrextend", &format!("16:sha256={}", "11".repeat(32))]);
        assert!(matches!(open(&swtpm).challenge(bound, b"x"), Err(Error::PolicyFailed { .. })));
    }

    /// A key file in the fixed YubiKey mode (a slot that hashes all 64 padded bytes) answers what
    /// such a slot answers, also where the variable mode differs.
    #[test]
    fn a_fixed_mode_key_file_answers_like_a_fixed_slot() {
        use swtpm_fixture::yubikey::{hmac_sha1, keepassxc_block};
        let swtpm = Swtpm::start();
        let secret = Secret::from_hex(YUBIKEY_SECRET).unwrap();
        let spec = KeySpec { yubikey_mode: keepassxc_tpm::SlotMode::Fixed, ..KeySpec::default() };
        let key = open(&swtpm).import_file_key(&spec, &secret, &swtpm.dir().join("fixed.tss")).unwrap().handle;
        let challenge = [0x20u8; 32];
        let fixed = hmac_sha1(&hex::decode(YUBIKEY_SECRET).unwrap(), &keepassxc_block(&challenge));
        assert_eq!(&open(&swtpm).challenge(key, &challenge).unwrap()[..], &fixed[..]);
        assert_ne!(fixed, yubikey_hmac(&reference_message(&challenge)), "the two modes differ here");
    }

    /// A record file that cannot be used stops `create` before the key file is written.
    #[test]
    fn a_broken_record_file_leaves_no_key_file() {
        let swtpm = Swtpm::start();
        let records = swtpm.dir().join("records");
        std::fs::create_dir(&records).unwrap();
        std::fs::write(records.join("keys.json"), "{not json").unwrap();
        let options = TpmOptions::tcti(Some(&swtpm.tcti())).with_metadata(Metadata::at(records.join("keys.json")));
        let path = swtpm.dir().join("k.tss");
        assert!(Tpm::open(&options).unwrap().create_file_key(&KeySpec::default(), &path).is_err());
        assert!(!path.exists(), "no file without its record");
    }
}

/// An attacker's storage key at 0x81000001 (tpm2-tools around the project: the SRK evicted, a
/// dictionary-attack-protected storage primary with an authValue persisted in its place and used
/// correctly once, so that libtpms would count a wrong authorisation): a key file's challenge is
/// refused as "not the storage key it was made under" before anything is authorised under that
/// key. On the wire no TPM2_Load (which authorises its parent) and no HMAC; the lockout counter
/// stays 0.
#[test]
fn a_swapped_storage_key_gets_no_load_and_costs_no_try() {
    use keepassxc_tpm::{Error, KeySpec, Metadata, Tpm, TpmOptions};
    use swtpm_fixture::commands::{HMAC, LOAD};
    use swtpm_fixture::{lockout_counter, CommandLog};

    let swtpm = Swtpm::start();
    let (tcti, dir) = (swtpm.tcti(), swtpm.dir().to_owned());
    persist_srk(&tcti, &dir);
    let records = Metadata::at(dir.join("keys.json"));
    let options = |tcti: &str| TpmOptions::tcti(Some(tcti)).with_metadata(records.clone());
    let key = Tpm::open(&options(&tcti)).unwrap().create_file_key(&KeySpec::default(), &dir.join("k.tss")).unwrap();
    let at = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    tpm2(&tcti, &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", "0x81000001"]);
    let attributes = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt";
    tpm2(
        &tcti,
        &[
            "tpm2_createprimary",
            "-Q",
            "-C",
            "o",
            "-G",
            "ecc",
            "-a",
            attributes,
            "-p",
            "attacker",
            "-c",
            &at("evil.ctx"),
        ],
    );
    tpm2(&tcti, &["tpm2_evictcontrol", "-Q", "-C", "o", "-c", &at("evil.ctx"), "0x81000001"]);
    tpm2(&tcti, &["tpm2_flushcontext", "-t"]);
    let child = ["-u", &at("c.pub"), "-r", &at("c.priv")];
    tpm2(&tcti, &[&["tpm2_create", "-Q", "-C", "0x81000001", "-P", "attacker", "-G", "hmac"][..], &child].concat());
    assert_eq!(lockout_counter(&tcti), 0, "the attacker's key used correctly once");

    let proxy = CommandLog::start(swtpm.port());
    let refused = Tpm::open(&options(&proxy.tcti())).unwrap().challenge(key.handle, b"x").unwrap_err();
    assert!(matches!(refused, Error::StorageKeyChanged { .. }), "{refused}");
    let sent = proxy.commands();
    assert!(!sent.contains(&LOAD) && !sent.contains(&HMAC), "nothing authorised under it: {sent:x?}");
    assert_eq!(lockout_counter(&tcti), 0, "no dictionary-attack try");
}
