//! Keys kept in files instead of persistent handles (the `impl Tpm` of [`crate::keyfile`]): made
//! under the storage parent and written as a TSS2 PRIVATE KEY, never persisted, so they take no
//! persistent slot and need no owner authorisation after the SRK exists. Each has a serial in
//! [`FILE_KEYS`] (its [`PersistentHandle`]), chosen at random when it is made; its record holds
//! what the file holds (public area, wrapped private part; its parent is the storage key the record
//! pins anyway), so the record alone loads it:
//! once per connection (TPM2_Load), kept loaded after that, flushed when the connection forgets it.

use std::path::{Path, PathBuf};

use crate::address::{PersistentHandle, SRK_HANDLE};
use crate::error::{Error, Result};
use crate::file_records::{
    absolute, delete_recorded, free_serial, key_file_error, not_loadable, recorded_file_keys, tpm2b, NO_RECORD,
};
use crate::key::{check_label, KeyInfo, KeySpec};
use crate::keyfile::{KeyFile, STANDARD_PARENT};
use crate::metadata::KeyRecord;
use crate::secret::Secret;
use crate::tpm::pinned::public_and_name;
use tss_esapi::handles::ObjectHandle;
use tss_esapi::structures::{Private, Public};
use tss_esapi::traits::Marshall;

use super::Tpm;

impl Tpm {
    /// Generates an HMAC key inside the TPM and writes it to the key file at `path` (which must
    /// not exist); its record goes to the record file. The secret never leaves the TPM unwrapped.
    pub fn create_file_key(&mut self, spec: &KeySpec, path: &Path) -> Result<KeyInfo> {
        self.provision_file(spec, None, path)
    }

    /// Imports `secret` as an HMAC key kept in the key file at `path`.
    pub fn import_file_key(&mut self, spec: &KeySpec, secret: &Secret, path: &Path) -> Result<KeyInfo> {
        secret.check_length(spec.algorithm)?;
        self.provision_file(spec, Some(secret), path)
    }

    fn provision_file(&mut self, spec: &KeySpec, secret: Option<&Secret>, path: &Path) -> Result<KeyInfo> {
        let label = spec.label.as_deref().map(check_label).transpose()?;
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(key_file_error(path, "it exists already: give a new file, or delete that key first"));
        }
        let metadata = self.metadata.clone();
        let lock = metadata.lock(crate::metadata::LOCK_WAIT)?;
        let handle = free_serial(&metadata)?;
        let (template, auth, sensitive) = self.new_key_inputs(spec, secret)?;
        let made = self.with_parent(true, |tpm, parent| {
            let parent_name = tpm.esys_name(parent.handle.into())?;
            let parent_public =
                if parent.is_transient() { None } else { tpm.public_at(PersistentHandle::new(SRK_HANDLE)?).ok() };
            let key = tpm.create_encrypted(parent.handle, &template, auth, sensitive)?;
            let file_parent = if parent.is_transient() { STANDARD_PARENT } else { SRK_HANDLE };
            Ok((key, parent_name, parent_public, file_parent))
        })?;
        let (key, storage_key_name, parent_public, file_parent) = made;
        let file = KeyFile {
            empty_auth: spec.pin.is_none(),
            parent: file_parent,
            public: tpm2b(&key.out_public.marshall().map_err(marshalling)?),
            private: tpm2b(key.out_private.value()),
        };
        let (public_bytes, key_name) = public_and_name(&key.out_public)
            .ok_or_else(|| Error::Wrapper { operation: "naming the new key", text: "no SHA-256 name".to_owned() })?;
        let pinned = |public: &Public, name: &str| {
            public_and_name(public).filter(|(_, n)| n == name).map(|(bytes, _)| hex::encode(bytes))
        };
        let record = KeyRecord {
            key_public: Some(hex::encode(&public_bytes)),
            key_name: Some(key_name),
            storage_key_public: parent_public.as_ref().and_then(|p| pinned(p, &storage_key_name)),
            storage_key_name: Some(storage_key_name),
            pcrs: spec.pcrs.clone(),
            yubikey_mode: spec.yubikey_mode,
            label,
            key_private: Some(hex::encode(&file.private)),
            key_file: Some(absolute(path).display().to_string()),
        };
        // The file first, then its record: a process killed in between leaves a file without a
        // record (harmless: nothing uses it), never a record without its file.
        file.write(path).map_err(|e| key_file_error(path, &format!("cannot write it ({e})")))?;
        if let Err(cause) = lock.set(handle, Some(&record)) {
            let removed = std::fs::remove_file(path).is_ok();
            return Err(Error::NotRecorded { handle, removed, cause: Box::new(cause) });
        }
        drop(lock);
        let info = self.key_info(handle);
        // Not kept loaded: without a resource manager the TPM holds only a few objects.
        self.forget(handle);
        info
    }

    /// Loads the key file `handle` names from its record, under the storage parent (the persistent
    /// SRK, or the standard storage primary when there is none) if it is the one the record pins;
    /// the TPM checks the wrapped private part against it.
    pub(crate) fn load_file_key(&mut self, handle: PersistentHandle) -> Result<ObjectHandle> {
        let record = self.record(handle)?.ok_or(Error::EmptyHandle { handle })?;
        let public = record
            .key_public
            .as_deref()
            .zip(record.key_name.as_deref())
            .and_then(|(public, name)| crate::tpm::pinned::recorded_public(public, name))
            .ok_or_else(|| not_loadable(handle, "its record's public area is missing or not the key it names"))?;
        let private = record
            .key_private
            .as_deref()
            .and_then(|hex_text| hex::decode(hex_text).ok())
            .and_then(|bytes| Private::try_from(bytes.get(2..)?.to_vec()).ok())
            .ok_or_else(|| not_loadable(handle, "its record holds no wrapped private part"))?;
        // TPM2_Load authorises the parent: only the storage key the record pins may be it.
        let pinned =
            record.storage_key_name.clone().ok_or_else(|| not_loadable(handle, "its record pins no storage key"))?;
        let load = |tpm: &mut Tpm| {
            tpm.with_pinned_parent(handle, &pinned, |tpm, parent| {
                tpm.with_password(|tpm| {
                    tpm.run("loading the key file", |ctx| ctx.load(parent.handle, private.clone(), public.clone()))
                })
            })
        };
        let loaded = match load(self) {
            // The TPM's few object slots hold other key files this connection loaded: flush them.
            Err(Error::OutOfMemory { .. }) if !self.keys.loaded_file_keys().is_empty() => {
                for other in self.keys.loaded_file_keys() {
                    self.forget(other);
                }
                load(self)?
            }
            other => other?,
        };
        Ok(loaded.into())
    }

    /// The serial of the key kept in the file at `path`: the record whose public area is the
    /// file's. A file without a record (made elsewhere, or its record lost) is not used: it could
    /// be any key, and nothing pins the storage key it was made under.
    pub fn file_key_serial(&mut self, path: &Path) -> Result<PersistentHandle> {
        let file = KeyFile::read(path).map_err(|e| key_file_error(path, &e.to_string()))?;
        self.metadata.content()?.key_file_serial(&file).ok_or_else(|| key_file_error(path, NO_RECORD))
    }

    /// Removes the key file `handle` names: its file (where its record says it is) and its record.
    /// `Ok(Some(path))`: the file could not be removed and is left at `path` (useless without
    /// its record only on another TPM: delete it by hand).
    pub fn delete_file_key(&mut self, handle: PersistentHandle) -> Result<Option<PathBuf>> {
        let record = self.record(handle)?.ok_or(Error::EmptyHandle { handle })?;
        self.forget(handle);
        delete_recorded(&self.metadata, handle, record)
    }

    /// The key files the record file holds, as their records describe them (no TPM command: each
    /// is checked against the TPM when it is used), for `list` beside the persistent keys.
    pub(crate) fn recorded_file_keys(&self) -> Vec<KeyInfo> {
        match &self.snapshot {
            Some(content) => recorded_file_keys(content),
            None => self.metadata.content().map(|content| recorded_file_keys(&content)).unwrap_or_default(),
        }
    }
}

/// Without a resource manager (swtpm, /dev/tpm0), nothing flushes what a connection loaded when it
/// closes: the key files it loaded are flushed here. (Behind /dev/tpmrm0 and tpm2-abrmd the
/// resource manager flushes them, also when the process is killed.)
impl Drop for Tpm {
    fn drop(&mut self) {
        if !self.tcti.flushes_on_close() {
            for handle in self.keys.loaded_file_keys() {
                self.forget(handle);
            }
        }
    }
}

fn marshalling(e: tss_esapi::Error) -> Error {
    Error::Wrapper { operation: "writing the key file", text: e.to_string() }
}
