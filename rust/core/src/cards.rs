//! The PC/SC driver's file: which keys root lets stock KeePassXC use as YubiKey-style cards
//! (`tpm-hmac pcsc enable` writes it; the driver inside pcscd, `pcsc status` and `doctor` read it).
//! It is a record file ([`crate::metadata`]) with the TCTI the keys were enabled through, read as
//! root's file for a service ([`crate::metadata::Trust::ServiceReadOnly`]): never written by a reader, refused
//! unless only root can have written it. Each record is checked here, once, for every front end.
//!
//! Beside the records, the file says for each key which slot of the driver's reader holds it and
//! which users may use it (`"cards": {"0x81000100": {"slot": 0, "users": ["alice"]}}`): a slot is
//! kept while its key stays enabled, so that a polkit rule naming a slot's reader keeps naming the
//! same key when another is disabled.

use std::fmt;
use std::path::Path;

use crate::address::PersistentHandle;
use crate::algorithm::Algorithm;
use crate::error::Error;
use crate::key::KeyInfo;
use crate::metadata::{FileContent, KeyRecord, Metadata};
use serde_json::Value;

/// Where `tpm-hmac pcsc enable` writes and the packaged reader.conf.d entry points.
pub const DEFAULT_PATH: &str = "/etc/keepassxc-tpm/pcsc.json";

/// The most slots the driver's reader offers. pcscd has room for 16 readers in all
/// (PCSCLITE_MAX_READERS_CONTEXTS), shared with real readers, and fixes a reader's slot count when
/// it loads it.
pub const MAX_SLOTS: usize = 8;

/// The package's drop-in for pcscd's unit (packaging/pcsc/pcscd-keepassxc-tpm.conf): it gives pcscd
/// the TPM device's group.
pub const PCSCD_DROP_IN: &str = "/usr/lib/systemd/system/pcscd.service.d/keepassxc-tpm.conf";

/// The reader's FRIENDLYNAME (packaging/pcsc/keepassxc-tpm).
pub const READER_NAME: &str = "KeePassXC TPM";

/// The name pcscd gives `slot` of the driver's reader (the first reader of that name: "00"), as
/// clients and polkit's `reader` detail see it.
pub fn slot_reader_name(slot: usize) -> String {
    format!("{READER_NAME} 00 {slot:02X}")
}

/// The field of the file that holds each card's slot and users.
const CARDS_FIELD: &str = "cards";

/// Why a record cannot be served as a card. `Display` says what is wrong with it; front ends add
/// what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotServable {
    /// The handle is not a persistent handle (the file was edited).
    BadHandle(String),
    /// The record is not a record this version can read.
    Malformed(String),
    /// The record pins no key name.
    NoKeyName,
    /// The record has no public area.
    NoPublicArea,
    /// The record pins no storage key.
    NoStorageKey,
    /// The recorded public area does not hash to the recorded name, or is not an HMAC key's.
    NotTheNamedKey,
    /// The key has a PIN, which a card cannot ask for.
    NeedsPin,
    /// The key is not HMAC-SHA1 (KeePassXC's YubiKey protocol carries 20-byte responses).
    NotSha1,
    /// The key is bound to a PCR policy, but its record names no PCRs.
    PolicyWithoutPcrs,
    /// Every slot of the reader holds another key.
    NoSlot,
    /// A key file's record without the wrapped key the driver loads.
    NoWrappedKey,
}

impl fmt::Display for NotServable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotServable::BadHandle(why) => write!(f, "{why}"),
            NotServable::Malformed(why) => write!(f, "its record is malformed ({why})"),
            NotServable::NoKeyName => write!(f, "its record pins no key name"),
            NotServable::NoPublicArea => write!(f, "its record has no public area"),
            NotServable::NoStorageKey => write!(f, "its record pins no storage key"),
            NotServable::NotTheNamedKey => {
                write!(f, "its recorded public area is not the HMAC key it names (or not an HMAC key)")
            }
            NotServable::NeedsPin => {
                write!(f, "it needs a PIN, which a YubiKey-style card cannot ask for: use it in the KeePassXC fork")
            }
            NotServable::NotSha1 => {
                write!(f, "it is not an HMAC-SHA1 key (KeePassXC's YubiKey protocol carries 20-byte responses)")
            }
            NotServable::PolicyWithoutPcrs => write!(f, "it is bound to a policy but its record names no PCRs"),
            NotServable::NoSlot => write!(f, "all {MAX_SLOTS} slots of the reader hold other keys"),
            NotServable::NoWrappedKey => write!(f, "it is a key file whose record holds no wrapped key"),
        }
    }
}

/// The key a record describes, if it may be served as a card: the record pins the key's name, its
/// public area (which hashes to that name, so the attributes read from it are the key's own) and
/// the storage key; the key is an HMAC-SHA1 key without a PIN (a PCR policy is fine when the
/// record names the PCRs). No TPM is asked: the core checks the TPM's key against the record at
/// each challenge.
pub fn servable(handle: PersistentHandle, record: &KeyRecord) -> Result<KeyInfo, NotServable> {
    record.key_name.as_deref().ok_or(NotServable::NoKeyName)?;
    record.key_public.as_deref().ok_or(NotServable::NoPublicArea)?;
    record.storage_key_name.as_deref().ok_or(NotServable::NoStorageKey)?;
    if handle.is_file_key() && record.key_private.is_none() {
        return Err(NotServable::NoWrappedKey);
    }
    let key = record.recorded_key(handle).ok_or(NotServable::NotTheNamedKey)?;
    if key.needs_pin() {
        return Err(NotServable::NeedsPin);
    }
    if key.algorithm != Algorithm::Sha1 {
        return Err(NotServable::NotSha1);
    }
    if key.policy_bound && record.pcrs.is_empty() {
        return Err(NotServable::PolicyWithoutPcrs);
    }
    Ok(key)
}

/// A key served as a card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    /// Where the key lives; its KeePassXC serial is the handle as a number.
    pub handle: PersistentHandle,
    /// The record the key is pinned to (the core checks the TPM's key against it).
    pub record: KeyRecord,
    /// The slot of the driver's reader that holds it (below [`MAX_SLOTS`]).
    pub slot: usize,
    /// Who may use it besides root, where pcscd asks polkit (`tpm-hmac pcsc enable --user`).
    pub users: Vec<String>,
}

/// What the file says of one card besides its record.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardSettings {
    /// The slot that holds the key; `None` in files of versions before slots were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<usize>,
    /// Who may use the key besides root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

/// Each card's settings in `content`, by handle ("0x81000100"); what cannot be read is left out.
pub fn settings(content: &FileContent) -> std::collections::BTreeMap<String, CardSettings> {
    let Some(Value::Object(cards)) = content.other.get(CARDS_FIELD) else { return Default::default() };
    cards.iter().filter_map(|(h, v)| Some((h.clone(), serde_json::from_value(v.clone()).ok()?))).collect()
}

/// Puts `settings` into `content` (an empty map takes the field away).
pub fn set_settings(content: &mut FileContent, settings: &std::collections::BTreeMap<String, CardSettings>) {
    if settings.is_empty() {
        content.other.remove(CARDS_FIELD);
    } else {
        let value = serde_json::to_value(settings).unwrap_or_default();
        content.other.insert(CARDS_FIELD.to_owned(), value);
    }
}

/// The slot a key newly enabled in `content` gets: its own when it has one, else the lowest free.
pub fn slot_for(content: &FileContent, handle: PersistentHandle) -> Option<usize> {
    let settings = settings(content);
    if let Some(slot) = settings.get(&handle.to_string()).and_then(|s| s.slot).filter(|&s| s < MAX_SLOTS) {
        return Some(slot);
    }
    let taken = Cards::of(content.clone()).served.into_iter().map(|c| c.slot).collect::<Vec<_>>();
    (0..MAX_SLOTS).find(|s| !taken.contains(s))
}

/// What the driver's file says, checked.
#[derive(Clone, Debug, Default)]
pub struct Cards {
    /// The TCTI to open the TPM with (`None`: the core's default search).
    pub tcti: Option<String>,
    /// Keys served, in slot order.
    pub served: Vec<Card>,
    /// Keys in the file that are not served, each with why.
    pub refused: Vec<(String, NotServable)>,
}

impl Cards {
    /// The driver's file at `path`, read once; the error says why it serves nothing at all, in
    /// words that follow "it" (a missing file serves nothing and is no error).
    pub fn read(path: &Path) -> Result<Cards, String> {
        Metadata::service_file(path).content().map(Cards::of).map_err(Error::file_reason)
    }

    /// Sorts `content`'s keys into served and refused, each served key in its slot: the slot the
    /// file gives it, else (a file of an earlier version) the lowest one free, in handle order.
    pub fn of(content: FileContent) -> Cards {
        let mut settings = settings(&content);
        let mut cards = Cards { tcti: content.tcti.filter(|t| !t.trim().is_empty()), ..Cards::default() };
        let mut unplaced = Vec::new();
        for (name, value) in content.keys {
            let served = name.parse::<PersistentHandle>().map_err(|e| NotServable::BadHandle(e.to_string())).and_then(
                |handle| {
                    let record: KeyRecord =
                        serde_json::from_value(value).map_err(|e| NotServable::Malformed(e.to_string()))?;
                    servable(handle, &record)?;
                    Ok((handle, record))
                },
            );
            let (handle, record) = match served {
                Ok(key) => key,
                Err(why) => {
                    cards.refused.push((name, why));
                    continue;
                }
            };
            let CardSettings { slot, users } = settings.remove(&name).unwrap_or_default();
            let card = Card { handle, record, slot: usize::MAX, users };
            match slot.filter(|&s| s < MAX_SLOTS && !cards.served.iter().any(|c| c.slot == s)) {
                Some(slot) => cards.served.push(Card { slot, ..card }),
                None => unplaced.push(card),
            }
        }
        for card in unplaced {
            match (0..MAX_SLOTS).find(|s| !cards.served.iter().any(|c| c.slot == *s)) {
                Some(slot) => cards.served.push(Card { slot, ..card }),
                None => cards.refused.push((card.handle.to_string(), NotServable::NoSlot)),
            }
        }
        cards.served.sort_by_key(|card| card.slot);
        cards
    }
}

#[cfg(test)]
mod tests {
    use swtpm_fixture::records::{hmac_public as public, record_json};

    use super::*;

    fn record(public: &[u8]) -> KeyRecord {
        serde_json::from_str(&record_json(public)).unwrap()
    }

    #[test]
    fn a_slot_stays_with_its_key() {
        let mut content = FileContent::default();
        let good = serde_json::to_value(record(&public(true, &[], 0x0004))).unwrap();
        let handles: Vec<PersistentHandle> =
            [0x8100_0102, 0x8100_0100, 0x8100_0101].iter().map(|&h| PersistentHandle::new(h).unwrap()).collect();
        let mut wanted = std::collections::BTreeMap::new();
        for &handle in &handles {
            let slot = slot_for(&content, handle).unwrap();
            content.keys.insert(handle.to_string(), good.clone());
            wanted.insert(handle.to_string(), CardSettings { slot: Some(slot), users: vec!["alice".into()] });
            set_settings(&mut content, &wanted);
        }
        let slots = |content: &FileContent| {
            Cards::of(content.clone()).served.iter().map(|c| (c.handle.value(), c.slot)).collect::<Vec<_>>()
        };
        assert_eq!(slots(&content), [(0x8100_0102, 0), (0x8100_0100, 1), (0x8100_0101, 2)], "in the order enabled");
        assert_eq!(Cards::of(content.clone()).served[0].users, ["alice"]);
        // Disabling the first key leaves the others where they are; the next key takes the gap.
        content.keys.remove("0x81000102");
        wanted.remove("0x81000102");
        set_settings(&mut content, &wanted);
        assert_eq!(slots(&content), [(0x8100_0100, 1), (0x8100_0101, 2)]);
        assert_eq!(slot_for(&content, PersistentHandle::new(0x8100_0105).unwrap()), Some(0));
        assert_eq!(slot_for(&content, handles[2]), Some(2), "a key enabled again keeps its slot");
        // A file of an earlier version (no slots) fills slots in handle order; a clash or a slot out
        // of range is placed anew.
        set_settings(&mut content, &Default::default());
        assert_eq!(slots(&content), [(0x8100_0100, 0), (0x8100_0101, 1)]);
        let clash = CardSettings { slot: Some(1), users: vec![] };
        let far = CardSettings { slot: Some(MAX_SLOTS), users: vec![] };
        set_settings(&mut content, &[("0x81000100".into(), clash.clone()), ("0x81000101".into(), clash)].into());
        assert_eq!(slots(&content), [(0x8100_0101, 0), (0x8100_0100, 1)]);
        set_settings(&mut content, &[("0x81000100".into(), far)].into());
        assert_eq!(slots(&content), [(0x8100_0100, 0), (0x8100_0101, 1)]);
        assert_eq!(slot_reader_name(10), "KeePassXC TPM 00 0A");
    }

    #[test]
    fn which_records_are_served() {
        let servable = |record: &KeyRecord| {
            super::servable(PersistentHandle::new(0x8100_0100).unwrap(), record).map(|_| ()).map_err(|e| e.to_string())
        };
        assert_eq!(servable(&record(&public(true, &[], 0x0004))), Ok(()));
        assert_eq!(servable(&record(&public(true, &[0; 32], 0x0004))), Ok(()), "the empty policy (no PIN, no PCRs)");
        assert!(servable(&record(&public(false, &[], 0x0004)))
            .unwrap_err()
            .contains("needs a PIN, which a YubiKey-style card cannot ask for: use it in the KeePassXC fork"));
        assert!(servable(&record(&public(true, &[], 0x000B))).unwrap_err().contains("not an HMAC-SHA1 key"));
        let bound = public(true, &[0x11; 32], 0x0004);
        assert!(servable(&record(&bound)).unwrap_err().contains("names no PCRs"));
        assert_eq!(servable(&KeyRecord { pcrs: vec![7], ..record(&bound) }), Ok(()), "PCR-bound without a PIN");
        let mut wrong = record(&public(true, &[], 0x0004));
        wrong.key_name = Some(format!("000b{}", "00".repeat(32)));
        assert!(servable(&wrong).unwrap_err().contains("not the HMAC key it names"));
        assert!(servable(&KeyRecord { storage_key_name: None, ..record(&public(true, &[], 4)) }).is_err());
        assert!(servable(&KeyRecord::default()).is_err());
        let file_key = PersistentHandle::new(0x8212_3456).unwrap();
        let record = record(&public(true, &[], 0x0004));
        assert_eq!(super::servable(file_key, &record), Err(NotServable::NoWrappedKey));
        let wrapped = KeyRecord { key_private: Some("0002abcd".into()), ..record };
        assert!(super::servable(file_key, &wrapped).is_ok());
    }
}
