//! The driver against a private swtpm: pcscd's entry points and the reader behind them answer
//! KeePassXC's and yubikit's APDUs with real TPM HMACs, and refuse what the config must not serve.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keepassxc_tpm::{KeyRecord, KeySpec, Metadata, PersistentHandle, Pin, Secret, SlotMode, Tpm, TpmOptions};
use keepassxc_tpm_pcsc::apdu::{status_block, OTP_AID};
use keepassxc_tpm_pcsc::ifd::*;
use keepassxc_tpm_pcsc::reader::{Reader, ATR};
use swtpm_fixture::yubikey::{keepassxc_block, slot_message, yubikey_hmac as hmac_sha1, yubikit_block, YUBIKEY_SECRET};
use swtpm_fixture::{commands, lockout_counter, persist_authvalue_key, replace_with_pin_key, CommandLog, Swtpm};

const KEY: u32 = 0x8100_0100;

fn handle(value: u32) -> PersistentHandle {
    PersistentHandle::new(value).unwrap()
}

struct Setup {
    swtpm: Swtpm,
    /// A private directory (0700) for config files.
    dir: tempfile::TempDir,
}

impl Setup {
    /// A swtpm with the YubiKey-secret key (no PIN) at KEY, recorded in the user's metadata file.
    fn new() -> Setup {
        let swtpm = Swtpm::start();
        let mut tpm = self::open(&swtpm);
        import(&mut tpm, KEY, None, SlotMode::Variable);
        let dir = tempfile::Builder::new().prefix("pcsc-").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Setup { swtpm, dir }
    }

    fn record(&self, at: u32) -> KeyRecord {
        Metadata::at(self.swtpm.dir().join("keys.json")).get(handle(at)).unwrap().expect("recorded at import")
    }

    /// Writes a config serving `keys` (handle, record) through this swtpm, mode 0600.
    fn config(&self, name: &str, keys: &[(u32, KeyRecord)]) -> PathBuf {
        self.config_via(&self.swtpm.tcti(), name, keys)
    }

    /// [`Setup::config`] reaching the TPM through `tcti` (a proxy in front of the swtpm).
    fn config_via(&self, tcti: &str, name: &str, keys: &[(u32, KeyRecord)]) -> PathBuf {
        let keys: serde_json::Map<String, serde_json::Value> =
            keys.iter().map(|(at, record)| (handle(*at).to_string(), serde_json::to_value(record).unwrap())).collect();
        let text = serde_json::json!({ "tcti": tcti, "keys": keys }).to_string();
        let path = self.dir.path().join(name);
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    fn da_failures(&self) -> u32 {
        self::open(&self.swtpm).da_status().unwrap().failures
    }
}

fn open(swtpm: &Swtpm) -> Tpm {
    Tpm::open(&TpmOptions::tcti(Some(&swtpm.tcti())).with_metadata(Metadata::at(swtpm.dir().join("keys.json"))))
        .expect("swtpm reachable")
}

fn import(tpm: &mut Tpm, at: u32, pin: Option<&str>, mode: SlotMode) {
    let spec = KeySpec {
        handle: Some(handle(at)),
        pin: pin.map(|p| Pin::new(p).unwrap()),
        yubikey_mode: mode,
        ..KeySpec::default()
    };
    tpm.import_key(&spec, &Secret::from_hex(YUBIKEY_SECRET).unwrap()).expect("import");
}

fn select() -> Vec<u8> {
    [&[0x00, 0xA4, 0x04, 0x00, 7][..], &OTP_AID].concat()
}

fn hmac_apdu(block: &[u8; 64]) -> Vec<u8> {
    [&[0x00, 0x01, 0x30, 0x00, 0x40][..], block].concat()
}

fn status(answer: &[u8]) -> u16 {
    u16::from_be_bytes([answer[answer.len() - 2], answer[answer.len() - 1]])
}

/// One APDU through IFDHTransmitToICC.
fn transmit(lun: Dword, apdu: &[u8]) -> (ResponseCode, Vec<u8>) {
    transmit_into(lun, apdu, 261)
}

/// One APDU through IFDHTransmitToICC with a receive buffer of `capacity` bytes.
fn transmit_into(lun: Dword, apdu: &[u8], capacity: usize) -> (ResponseCode, Vec<u8>) {
    let mut rx = vec![0u8; capacity];
    let mut rx_length = rx.len() as Dword;
    let pci = ScardIoHeader { protocol: 2, length: 8 };
    // SAFETY: the buffers are ours and their lengths are given as they are.
    let rv = unsafe {
        IFDHTransmitToICC(
            lun,
            pci,
            apdu.as_ptr(),
            apdu.len() as Dword,
            rx.as_mut_ptr(),
            &mut rx_length,
            std::ptr::null_mut(),
        )
    };
    rx.truncate(rx_length as usize);
    (rv, rx)
}

#[test]
fn keepassxc_and_yubikit_get_the_tpm_hmac_through_the_entry_points() {
    let setup = Setup::new();
    let path = setup.config("pcsc.json", &[(KEY, setup.record(KEY))]);
    let lun: Dword = 0x0001_0000;
    let name = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated string that outlives the call.
    assert_eq!(unsafe { IFDHCreateChannelByName(lun, name.as_ptr()) }, IFD_SUCCESS);

    let capability = |tag: Dword| {
        let mut value = [0u8; 64];
        let mut length = value.len() as Dword;
        // SAFETY: our buffer, its length given as it is.
        let rv = unsafe { IFDHGetCapabilities(lun, tag, &mut length, value.as_mut_ptr()) };
        (rv, value[..length as usize].to_vec())
    };
    assert_eq!(capability(TAG_IFD_SLOTS_NUMBER), (IFD_SUCCESS, vec![1]));
    assert_eq!(capability(TAG_IFD_THREAD_SAFE), (IFD_SUCCESS, vec![0]));
    assert_eq!(capability(0x1234).0, IFD_ERROR_TAG);
    assert_eq!(IFDHICCPresence(lun), IFD_ICC_PRESENT);

    let mut atr = [0u8; 33];
    let mut atr_length = atr.len() as Dword;
    // SAFETY: our buffer, its length given as it is.
    assert_eq!(unsafe { IFDHPowerICC(lun, IFD_POWER_UP, atr.as_mut_ptr(), &mut atr_length) }, IFD_SUCCESS);
    assert_eq!(&atr[..atr_length as usize], &ATR);
    assert_eq!(capability(TAG_IFD_ATR), (IFD_SUCCESS, ATR.to_vec()));
    assert_eq!(IFDHSetProtocolParameters(lun, 2, 0, 0, 0, 0), IFD_SUCCESS);

    // KeePassXC's detection, then its challenge, as `pcscd -a` showed them.
    let (rv, answer) = transmit(lun, &select());
    assert_eq!(rv, IFD_SUCCESS);
    assert_eq!(answer, [&status_block()[..], &[0x90, 0x00]].concat());
    assert_eq!(
        transmit(lun, &[0x00, 0x01, 0x10, 0x00, 0x06]).1,
        [0x81, 0x00, 0x01, 0x00, 0x90, 0x00],
        "serial = handle"
    );
    let test_block = keepassxc_block(&[0x00]);
    let answer = transmit(lun, &hmac_apdu(&test_block)).1;
    assert_eq!(answer, [hmac_sha1(&slot_message(&test_block)), vec![0x90, 0x00]].concat(), "the 1-byte test challenge");
    let mut slot2 = hmac_apdu(&test_block);
    slot2[2] = 0x38;
    assert_eq!(transmit(lun, &slot2).1, [0x6A, 0x82], "slot 2: not configured");
    assert_eq!(
        transmit(lun, &[0x00, 0x03, 0x00, 0x00, 0x06]).1,
        [3, 0, 0, 1, 1, 0, 0x90, 0x00],
        "2.7.4's version query"
    );

    let seed: Vec<u8> = (101..=132).collect(); // does not end in the padding byte 0x20
    let answer = transmit(lun, &hmac_apdu(&keepassxc_block(&seed))).1;
    assert_eq!(answer, [hmac_sha1(&seed), vec![0x90, 0x00]].concat(), "KeePassXC's PKCS#7 block: the seed is hashed");
    let answer = transmit(lun, &hmac_apdu(&yubikit_block(&seed))).1;
    assert_eq!(answer, [hmac_sha1(&seed), vec![0x90, 0x00]].concat(), "yubikit's zero padding: the same response");
    // A seed ending in the padding byte: each client gets what a YubiKey slot gives it.
    let mut seed_0x20 = seed.clone();
    seed_0x20[31] = 0x20;
    let block = keepassxc_block(&seed_0x20);
    assert_eq!(transmit(lun, &hmac_apdu(&block)).1, [hmac_sha1(&seed_0x20[..31]), vec![0x90, 0x00]].concat());
    assert_eq!(transmit(lun, &hmac_apdu(&yubikit_block(&seed_0x20))).1[..20], hmac_sha1(&seed_0x20)[..]);

    // The answer fits only a buffer big enough; a reset deselects the applet.
    let apdu = hmac_apdu(&test_block);
    assert_eq!(transmit_into(lun, &apdu, 4).0, IFD_ERROR_INSUFFICIENT_BUFFER);
    // SAFETY: as above.
    assert_eq!(unsafe { IFDHPowerICC(lun, IFD_RESET, atr.as_mut_ptr(), &mut atr_length) }, IFD_SUCCESS);
    assert_eq!(transmit(lun, &apdu).1, [0x6A, 0x82], "nothing selected after a reset");
    // SAFETY: NULL device name: the default file, which this machine may not have: still a reader.
    assert_eq!(unsafe { IFDHCreateChannelByName(0x0002_0000, std::ptr::null()) }, IFD_SUCCESS);
    assert_eq!(IFDHCloseChannel(0x0002_0000), IFD_SUCCESS);
    assert_eq!(IFDHCloseChannel(lun), IFD_SUCCESS);
    assert_eq!(IFDHICCPresence(lun), IFD_COMMUNICATION_ERROR, "closed");
    assert_eq!(setup.da_failures(), 0);
}

/// Powers the reader's slot up and sends SELECT, then one KeePassXC challenge; the status word.
fn challenge_status(reader: &mut Reader, slot: usize) -> Option<u16> {
    reader.power_up(slot)?;
    reader.transmit(slot, &select())?;
    reader.transmit(slot, &hmac_apdu(&keepassxc_block(&[9; 32]))).map(|a| status(&a))
}

#[test]
fn files_and_records_it_must_not_serve() {
    let setup = Setup::new();
    let good = setup.record(KEY);
    let mut tpm = open(&setup.swtpm);
    import(&mut tpm, 0x8100_0101, Some("2468"), SlotMode::Variable);
    import(&mut tpm, 0x8100_0102, None, SlotMode::Variable);
    // Used correctly once, so that libtpms would count a wrong authorisation (not TPM_RC_RETRY).
    tpm.challenge_with_pin(handle(0x8100_0101), &[1; 32], Some(&Pin::new("2468").unwrap())).unwrap();
    drop(tpm);

    let mut served = Reader::open(&setup.config("good.json", &[(KEY, good.clone())]));
    assert_eq!(challenge_status(&mut served, 0), Some(0x9000), "positive control");

    // A symlink to a good file, a file group or others may write: no card.
    let link = setup.dir.path().join("link.json");
    std::os::unix::fs::symlink(setup.dir.path().join("good.json"), &link).unwrap();
    assert!(!Reader::open(&link).present(0));
    for mode in [0o620, 0o602] {
        let path = setup.config(&format!("writable-{mode:o}.json"), &[(KEY, good.clone())]);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        assert!(!Reader::open(&path).present(0), "mode {mode:o}");
    }
    // A key with a PIN: its record says so, and it is not served.
    let pin_key = setup.config("pin.json", &[(0x8100_0101, setup.record(0x8100_0101))]);
    assert!(!Reader::open(&pin_key).present(0));

    // Another key's record pinned at a handle: the core's pin fails closed, the card goes.
    let other = setup.config("other.json", &[(0x8100_0102, good.clone())]);
    let mut reader = Reader::open(&other);
    assert!(reader.present(0), "the record itself is well-formed");
    assert_eq!(challenge_status(&mut reader, 0), Some(0x6F00));
    assert!(!reader.present(0), "refused: no card until the file changes");
    // The same at the PIN key's handle: its name is read first, no authorisation is tried.
    let proxy = CommandLog::start(setup.swtpm.port());
    let at_pin_key = setup.config_via(&proxy.tcti(), "at-pin-key.json", &[(0x8100_0101, good.clone())]);
    let mut reader = Reader::open(&at_pin_key);
    assert_eq!(challenge_status(&mut reader, 0), Some(0x6F00));
    assert!(!reader.present(0));
    assert!(!proxy.commands().contains(&commands::HMAC), "no authorisation tried: {:x?}", proxy.commands());

    // A deleted key: a status word, then no card.
    let deleted = setup.config("deleted.json", &[(0x8100_0102, setup.record(0x8100_0102))]);
    let mut tpm = open(&setup.swtpm);
    tpm.delete_key(handle(0x8100_0102)).unwrap();
    drop(tpm);
    let mut reader = Reader::open(&deleted);
    assert_eq!(challenge_status(&mut reader, 0), Some(0x6F00));
    assert!(!reader.present(0));

    assert_eq!(lockout_counter(&setup.swtpm.tcti()), 0, "no dictionary-attack try");
    assert_eq!(challenge_status(&mut served, 0), Some(0x9000), "the good key still answers");
}

/// pcscd keeps the driver (and its TPM connection) for hours. The served key's owner deletes it and
/// makes a key with a PIN at the same handle, and uses it once; any pcscd client then asks the old
/// card again. The driver's file still pins the old key: the card goes, and the TPM counts nothing
/// (checked with tpm2-tools, and on the wire: no answer is a counted failure, and any HMAC sent went
/// in a policy session without PolicyAuthValue, which the TPM never counts).
#[test]
fn a_key_replaced_while_pcscd_runs_costs_no_dictionary_attack_try() {
    let setup = Setup::new();
    let old_form = 0x8100_0104;
    persist_authvalue_key(&setup.swtpm.tcti(), setup.swtpm.dir(), old_form);
    open(&setup.swtpm).checked_key(handle(old_form)).unwrap(); // recorded at first use
    let proxy = CommandLog::start(setup.swtpm.port());
    for (what, at) in [("a key made now (the empty policy)", KEY), ("a key of the old form (its authValue)", old_form)]
    {
        let mut reader = Reader::open(&setup.config_via(&proxy.tcti(), "pcsc.json", &[(at, setup.record(at))]));
        assert_eq!(challenge_status(&mut reader, 0), Some(0x9000), "{what}");
        assert_eq!(challenge_status(&mut reader, 0), Some(0x9000), "{what}, warm");

        replace_with_pin_key(&setup.swtpm.tcti(), setup.swtpm.dir(), at, "2468");
        proxy.clear();
        assert_eq!(challenge_status(&mut reader, 0), Some(0x6F00), "{what}: refused");
        for _ in 0..3 {
            assert!(!reader.present(0), "{what}: the card is gone");
            assert_eq!(challenge_status(&mut reader, 0), None, "{what}: the card is gone");
        }
        let refused = challenge_status(&mut Reader::open(&setup.dir.path().join("pcsc.json")), 0);
        assert_eq!(refused, Some(0x6F00), "{what}: a new reader refuses it too");
        for (command, rc) in proxy.answers() {
            assert!(!matches!(rc, 0x98E | 0x9A2 | 0x921), "{what}: 0x{command:X} answered 0x{rc:03X}");
        }
        for session in proxy.hmac_sessions() {
            assert!(session.is_some_and(|s| s >> 24 == 0x03), "{what}: an HMAC in session {session:x?}");
        }
        if at == old_form {
            assert!(!proxy.commands().contains(&commands::HMAC), "{what}: read before any authorisation");
        }
        assert_eq!(lockout_counter(&setup.swtpm.tcti()), 0, "{what}: TPM2_PT_LOCKOUT_COUNTER unchanged");
    }
}

/// The driver's file is root's: pcscd reads it and never changes it, not even its mode (a file made
/// readable by pcscd's group for a unit with `User=pcscd` stays so; under `ProtectSystem=strict` a
/// chmod would fail and the key would be refused).
#[test]
fn the_drivers_file_is_read_and_never_changed() {
    let setup = Setup::new();
    let path = setup.config("pcsc.json", &[(KEY, setup.record(KEY))]);
    for mode in [0o644, 0o640] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let before = std::fs::read(&path).unwrap();
        let mut reader = Reader::open(&path);
        assert_eq!(challenge_status(&mut reader, 0), Some(0x9000), "mode {mode:o}");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, mode, "mode {mode:o} kept");
        assert_eq!(std::fs::read(&path).unwrap(), before, "mode {mode:o}: content kept");
    }
}

/// The removal of a card is reported by the presence poll (IFDHICCPresence) alone: a query that
/// comes first (pcscd's or a client's transmit) must not swallow it, or pcscd never sees the card
/// change when a key is disabled or replaced.
#[test]
fn a_removal_is_reported_to_the_presence_poll_whatever_comes_first() {
    let setup = Setup::new();
    let mut tpm = open(&setup.swtpm);
    import(&mut tpm, 0x8100_0103, None, SlotMode::Variable);
    drop(tpm);
    let path = setup.config("pcsc.json", &[(KEY, setup.record(KEY))]);
    let mut reader = Reader::open(&path);
    assert_eq!(challenge_status(&mut reader, 0), Some(0x9000));

    setup.config("pcsc.json", &[(0x8100_0103, setup.record(0x8100_0103))]);
    assert!(reader.transmit(0, &select()).is_none(), "the old card is gone");
    assert!(reader.atr(0).is_none() && reader.power_up(0).is_none() && reader.serial(0).is_none());
    assert!(!reader.present(0), "the poll still sees the removal");
    assert!(reader.present(0), "then the new card");
    assert_eq!(reader.serial(0), Some(0x8100_0103));
    assert_eq!(challenge_status(&mut reader, 0), Some(0x9000));
}

/// ifdhandler.h: the returned length "should be ZERO on all errors".
#[test]
fn every_error_returns_a_length_of_zero() {
    let setup = Setup::new();
    let path = setup.config("pcsc.json", &[]);
    let lun: Dword = 0x0003_0000;
    let name = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated string that outlives the call.
    assert_eq!(unsafe { IFDHCreateChannelByName(lun, name.as_ptr()) }, IFD_SUCCESS);
    let mut buffer = [0u8; 64];
    let mut length = buffer.len() as Dword;
    // SAFETY: our buffer, its length given as it is.
    assert_eq!(unsafe { IFDHGetCapabilities(lun, 0x1234, &mut length, buffer.as_mut_ptr()) }, IFD_ERROR_TAG);
    assert_eq!(length, 0, "unknown tag");
    length = buffer.len() as Dword;
    // SAFETY: as above.
    assert_eq!(unsafe { IFDHGetCapabilities(lun, TAG_IFD_ATR, &mut length, buffer.as_mut_ptr()) }, IFD_ICC_NOT_PRESENT);
    assert_eq!(length, 0, "no card, no ATR");
    length = buffer.len() as Dword;
    // SAFETY: as above.
    assert_eq!(unsafe { IFDHPowerICC(lun, IFD_POWER_UP, buffer.as_mut_ptr(), &mut length) }, IFD_ERROR_POWER_ACTION);
    assert_eq!(length, 0, "no card to power");
    let (rv, answer) = transmit(lun, &select());
    assert_eq!((rv, answer.len()), (IFD_ICC_NOT_PRESENT, 0), "no card to send to");
    let (rv, answer) = transmit(0x0009_0000, &select());
    assert_eq!((rv, answer.len()), (IFD_COMMUNICATION_ERROR, 0), "no such reader");

    setup.config("pcsc.json", &[(KEY, setup.record(KEY))]);
    assert_eq!(IFDHICCPresence(lun), IFD_ICC_PRESENT);
    length = buffer.len() as Dword;
    // SAFETY: as above.
    assert_eq!(unsafe { IFDHPowerICC(lun, IFD_POWER_UP, buffer.as_mut_ptr(), &mut length) }, IFD_SUCCESS);
    let (rv, answer) = transmit_into(lun, &select(), 4);
    assert_eq!((rv, answer.len()), (IFD_ERROR_INSUFFICIENT_BUFFER, 0), "a buffer too small");
    assert_eq!(IFDHCloseChannel(lun), IFD_SUCCESS);
}

#[test]
fn a_change_to_the_file_takes_effect_without_reopening() {
    let setup = Setup::new();
    let path = setup.config("pcsc.json", &[]);
    let mut reader = Reader::open(&path);
    assert_eq!(reader.slot_count(), 1);
    assert!(!reader.present(0), "no key enabled");

    setup.config("pcsc.json", &[(KEY, setup.record(KEY))]);
    assert!(reader.present(0), "enabled");
    assert_eq!(reader.serial(0), Some(KEY));
    assert_eq!(challenge_status(&mut reader, 0), Some(0x9000));

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
    assert!(!reader.present(0), "made writable by the group");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(reader.present(0), "fixed");

    // A fixed-mode key in place of the first: the card is taken out once, then the new one answers.
    let mut tpm = open(&setup.swtpm);
    import(&mut tpm, 0x8100_0103, None, SlotMode::Fixed);
    drop(tpm);
    setup.config("pcsc.json", &[(0x8100_0103, setup.record(0x8100_0103))]);
    assert!(!reader.present(0), "the old card is removed first");
    assert!(reader.present(0));
    assert_eq!(reader.serial(0), Some(0x8100_0103));
    reader.power_up(0).unwrap();
    reader.transmit(0, &select()).unwrap();
    let block = keepassxc_block(&[9; 32]);
    let answer = reader.transmit(0, &hmac_apdu(&block)).unwrap();
    assert_eq!(answer[..20], hmac_sha1(&block)[..], "a fixed slot hashes the whole block");

    setup.config("pcsc.json", &[]);
    assert!(!reader.present(0), "disabled");
}

#[test]
fn a_tpm_that_stops_answering_costs_a_status_word_not_a_hang() {
    let mut setup = Setup::new();
    let path = setup.config("pcsc.json", &[(KEY, setup.record(KEY))]);
    let mut reader = Reader::open(&path);
    assert_eq!(challenge_status(&mut reader, 0), Some(0x9000));

    setup.swtpm.freeze();
    let started = Instant::now();
    assert_eq!(challenge_status(&mut reader, 0), Some(0x6F00));
    assert!(started.elapsed() < Duration::from_secs(10), "gave up within 10 s: {:?}", started.elapsed());
    let started = Instant::now();
    assert_eq!(challenge_status(&mut reader, 0), Some(0x6F00));
    assert!(started.elapsed() < Duration::from_secs(1), "fails at once for a while after a timeout");
    assert!(reader.present(0), "the card stays");
    setup.swtpm.thaw();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(challenge_status(&mut reader, 0), Some(0x9000), "a new connection after the timeout");

    setup.swtpm.stop();
    assert_eq!(challenge_status(&mut reader, 0), Some(0x6F00), "TPM gone");
    assert!(reader.present(0));
    setup.swtpm.restart();
    assert_eq!(challenge_status(&mut reader, 0), Some(0x9000), "TPM back");
    assert_eq!(setup.da_failures(), 0);
}

#[test]
fn a_missing_config_is_no_card() {
    let dir = tempfile::tempdir().unwrap();
    let mut reader = Reader::open(Path::new(&dir.path().join("none.json")));
    assert!(!reader.present(0));
}

/// A key kept in a file (issue 31): its record, copied into the driver's file, is all the driver
/// needs (nothing under /home): the card answers what the YubiKey twin answers, with the key
/// loaded from the record; the user's key file itself may be gone.
#[test]
fn a_key_files_record_is_served_without_the_file() {
    let setup = Setup::new();
    let mut tpm = open(&setup.swtpm);
    let key_file = setup.swtpm.dir().join("twin.tss");
    let key = tpm.import_file_key(&KeySpec::default(), &Secret::from_hex(YUBIKEY_SECRET).unwrap(), &key_file).unwrap();
    drop(tpm);
    let record = Metadata::at(setup.swtpm.dir().join("keys.json")).get(key.handle).unwrap().unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let keys: serde_json::Map<String, serde_json::Value> =
        [(key.handle.to_string(), serde_json::to_value(&record).unwrap())].into_iter().collect();
    let path = setup.dir.path().join("file-key.json");
    std::fs::write(&path, serde_json::json!({ "tcti": setup.swtpm.tcti(), "keys": keys }).to_string()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut reader = Reader::open(&path);
    assert_eq!(reader.serial(0), Some(key.handle.serial()));
    reader.power_up(0).unwrap();
    reader.transmit(0, &select()).unwrap();
    let block = keepassxc_block(&[7; 32]);
    let answer = reader.transmit(0, &hmac_apdu(&block)).unwrap();
    assert_eq!(status(&answer), 0x9000);
    assert_eq!(&answer[..20], &hmac_sha1(&slot_message(&block))[..]);
}
