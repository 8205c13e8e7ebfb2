//! What a challenge trusts about a key and its storage key, and why.
//!
//! A ReadPublic answer is not authenticated: an interposer can answer it with anything. So a
//! challenge compares what it is told with what was recorded when the key was provisioned
//! (or, for a key made by other tools, when it was first used: trust on first use):
//! - the key's TPM name must be the recorded one; its public area, recorded too, is taken only
//!   when it hashes to that name, so the key's attributes (PIN or not, PCR policy or not) come
//!   from the key, never from the file's say-so;
//! - the storage key that salts the session must have the recorded name, checked before the
//!   salt is encrypted to it.
//!
//! A record that exists but does not match is an error, never "no record".
//!
//! Checking keys against their metadata records: its types first, then the `impl Tpm` that uses them.

use crate::address::{PersistentHandle, SRK_HANDLE};
use crate::error::{Error, Result};
pub(crate) use crate::key::public::sha256_name;
use crate::key::{describe, KeyInfo, Object};
use crate::metadata::KeyRecord;
use crate::tpm::parent::Parent;
use tss_esapi::handles::ObjectHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::Public;
use tss_esapi::traits::{Marshall, UnMarshall};

use super::Tpm;

/// A key as a challenge may use it: what it is, and what it was pinned to.
#[derive(Clone, Debug)]
pub(crate) struct PinnedKey {
    pub(crate) info: KeyInfo,
    pub(crate) record: KeyRecord,
}

impl PinnedKey {
    /// The name of the storage key this key's sessions must be salted with.
    pub(crate) fn storage_key_name(&self) -> &str {
        self.record.storage_key_name.as_deref().unwrap_or_default()
    }
}

/// The TPM name of a public area: its name algorithm's ID and the hash of its TPMT_PUBLIC
/// (TPM 2.0 Part 1, 16). Only SHA-256 names are computed (our keys and the SRK use them).
pub(crate) fn public_and_name(public: &Public) -> Option<(Vec<u8>, String)> {
    if public.name_hashing_algorithm() != HashingAlgorithm::Sha256 {
        return None;
    }
    let bytes = public.marshall().ok()?;
    let name = hex::encode(sha256_name(&bytes)?);
    Some((bytes, name))
}

/// The public area recorded as `hex`, if it is the one named `name`.
pub(crate) fn recorded_public(hex: &str, name: &str) -> Option<Public> {
    let bytes = hex::decode(hex).ok()?;
    let public = Public::unmarshall(&bytes).ok()?;
    (public_and_name(&public)?.1 == name && public.marshall().ok()? == bytes).then_some(public)
}

/// How long a challenge waits for the metadata file's lock to record a first use.
const FIRST_USE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Tpm {
    /// The key at `handle`, checked against its record in this connection's metadata file (one
    /// ReadPublic the first time; no authorisation is sent): [`Error::RecordMismatch`] when the key
    /// there is not the recorded one. A key without a record is recorded now.
    pub fn checked_key(&mut self, handle: PersistentHandle) -> Result<KeyInfo> {
        let object = self.resolve(handle)?;
        self.pinned_key(handle, object).map(|key| key.info)
    }

    /// The key at `handle` checked against its record; a key without a record is recorded now.
    pub(crate) fn pinned_key(&mut self, handle: PersistentHandle, object: ObjectHandle) -> Result<PinnedKey> {
        if let Some(key) = self.keys.checked(handle) {
            return Ok(key.clone());
        }
        let name = self.esys_name(object)?;
        let key = match self.record(handle)? {
            Some(record) => self.check_record(handle, &name, record)?,
            None => self.first_use(handle, name)?,
        };
        self.keys.check_passed(handle, key.clone());
        Ok(key)
    }

    fn check_record(&mut self, handle: PersistentHandle, name: &str, mut record: KeyRecord) -> Result<PinnedKey> {
        if record.key_name.as_deref() != Some(name) {
            return Err(Error::RecordMismatch { handle, path: self.metadata_path() });
        }
        let info = match record.key_public.as_deref().and_then(|p| recorded_public(p, name)) {
            Some(public) => hmac_key(handle, &public)?,
            // Recorded by an older version, or not a public area of this key: ask the TPM.
            None => self.key_info(handle)?,
        };
        if record.storage_key_name.is_none() {
            // Recorded by a version that did not pin the storage key: pin it now, once.
            let before = record.clone();
            (record.storage_key_name, record.storage_key_public) = self.storage_key_pin()?;
            self.record_first_use(handle, Some(&before), &record);
        }
        Ok(PinnedKey { info, record })
    }

    /// Trust on first use: a key provisioned by other tools (or whose record was lost) is
    /// recorded with the storage key that answers now.
    fn first_use(&mut self, handle: PersistentHandle, name: String) -> Result<PinnedKey> {
        let public = self.public_at(handle)?;
        let info = hmac_key(handle, &public)?;
        if info.policy_bound {
            // Which PCRs is known only from the record: nothing to send that could succeed.
            return Err(Error::PolicyUnknown { rc: 0 });
        }
        let (storage_key_name, storage_key_public) = self.storage_key_pin()?;
        let record = KeyRecord {
            key_public: public_and_name(&public).filter(|(_, n)| *n == name).map(|(bytes, _)| hex::encode(bytes)),
            key_name: Some(name),
            storage_key_name,
            storage_key_public,
            pcrs: Vec::new(),
            yubikey_mode: Default::default(),
            label: None,
            ..KeyRecord::default()
        };
        self.record_first_use(handle, None, &record);
        Ok(PinnedKey { info, record })
    }

    /// Writes `record` if the file still holds `expected` for the key (someone may have recorded
    /// it meanwhile: never overwrite another record). Best effort: when the file cannot be
    /// written the pin holds for this connection only.
    fn record_first_use(&self, handle: PersistentHandle, expected: Option<&KeyRecord>, record: &KeyRecord) {
        if let Ok(lock) = self.metadata.lock(FIRST_USE_LOCK_WAIT) {
            if self.metadata.get(handle).ok().as_ref() == Some(&expected.cloned()) {
                let _ = lock.set(handle, Some(record));
            }
        }
    }

    /// The name of the storage key that salts sessions now and, when it is the persistent SRK,
    /// its public area (hex), as a record pins them.
    pub(crate) fn storage_key_pin(&mut self) -> Result<(Option<String>, Option<String>)> {
        let (name, persistent) =
            self.with_parent(false, |tpm, parent| Ok((tpm.esys_name(parent.handle.into())?, !parent.is_transient())))?;
        let public = if persistent {
            let public = self.public_at(PersistentHandle::new(SRK_HANDLE)?)?;
            public_and_name(&public).filter(|(_, n)| *n == name).map(|(bytes, _)| hex::encode(bytes))
        } else {
            None
        };
        Ok((Some(name), public))
    }

    /// Runs `f` with the storage key to salt a session for `key` with, refused before anything is
    /// encrypted to it unless it has the pinned name; flushed afterwards when transient.
    pub(crate) fn with_salt_key<T>(
        &mut self,
        key: &PinnedKey,
        f: impl FnOnce(&mut Tpm, &Parent) -> Result<T>,
    ) -> Result<T> {
        self.with_pinned_parent(key.info.handle, key.storage_key_name(), f)
    }

    /// Runs `f` with the storage parent, refused (`StorageKeyChanged` for `handle`) before anything
    /// is encrypted to it or authorised under it unless it has the `pinned` name: another object at
    /// 0x81000001 may carry an authValue and count a failed authorisation; flushed afterwards when
    /// transient.
    pub(crate) fn with_pinned_parent<T>(
        &mut self,
        handle: PersistentHandle,
        pinned: &str,
        f: impl FnOnce(&mut Tpm, &Parent) -> Result<T>,
    ) -> Result<T> {
        self.with_parent(false, |tpm, parent| {
            if tpm.esys_name(parent.handle.into())? != pinned {
                return Err(Error::StorageKeyChanged { handle });
            }
            f(tpm, parent)
        })
    }

    pub(crate) fn metadata_path(&self) -> String {
        self.metadata.path().map_or_else(|| "the metadata file".to_owned(), |p| p.display().to_string())
    }
}

fn hmac_key(handle: PersistentHandle, public: &Public) -> Result<KeyInfo> {
    match describe(handle, public) {
        Object::Hmac(info) => Ok(info),
        Object::Other { what, .. } => Err(Error::NotHmacKey { handle, what }),
    }
}
