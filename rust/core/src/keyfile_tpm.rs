//! Key files on the direct path alone ([`KeyFileTpm`]): what the Windows build does with the TPM,
//! through Windows' TPM Base Services. The same code runs on Linux over swtpm or /dev/tpmrm0, where
//! the tests check it against the ESYS path: a key file either build makes answers the same in the
//! other, with the same record file.
//!
//! Keys without a PIN or PCR policy only (the empty-policy form `tpm-hmac create --key-file`
//! makes). The storage parent is the persistent SRK at 0x81000001 when it is an ECC P-256 storage
//! key (as Linux makes it), else the standard ECC P-256 primary, made transiently
//! (TPM2_CreatePrimary; Windows' own SRK is RSA). Its name is pinned in the key's record when the
//! key is made, and checked before anything is loaded under it, as on Linux.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::address::{PersistentHandle, SRK_HANDLE};
use crate::challenge::ChallengeRule;
use crate::direct::provision::Loaded;
use crate::direct::{Direct, Fallback, SaltKey};
use crate::error::{Error, Result};
use crate::file_records::{self, absolute, key_file_error, not_loadable, tpm2b};
use crate::key::{check_label, public, KeyInfo, KeySpec, Origin};
use crate::keyfile::{KeyFile, STANDARD_PARENT};
use crate::metadata::{KeyRecord, Metadata};
use crate::secret::Secret;

/// A connection to the TPM for key files, and the user's record file.
pub struct KeyFileTpm {
    direct: Direct,
    metadata: Metadata,
    /// How the TPM is reached, for messages: "TBS", or the TCTI.
    reached_through: String,
}

/// The storage parent of one operation: its handle and name, its point, and whether it was made
/// for this operation (then it is flushed after it).
struct Parent {
    loaded: Loaded,
    public: Vec<u8>,
    x: Vec<u8>,
    y: Vec<u8>,
    transient: bool,
}

impl Parent {
    fn salt_key(&self) -> SaltKey {
        SaltKey { handle: self.loaded.handle, x: self.x.clone(), y: self.y.clone() }
    }
}

impl KeyFileTpm {
    /// The TPM behind Windows' TPM Base Services.
    #[cfg(windows)]
    pub fn open(metadata: Metadata) -> Result<KeyFileTpm> {
        let context = keepassxc_tpm_tbs::Context::open().map_err(|rc| Error::NoTpm {
            tcti: "TBS".to_owned(),
            detail: if rc == keepassxc_tpm_tbs::TPM_NOT_FOUND {
                format!("Windows found no TPM 2.0, 0x{rc:08X}")
            } else {
                format!("TBS refused a context, 0x{rc:08X}")
            },
        })?;
        Ok(KeyFileTpm {
            direct: Direct::over(crate::direct::transport::Transport::Tbs(context), false),
            metadata,
            reached_through: "TBS".into(),
        })
    }

    /// The TPM at `tcti`, which must be one the direct path speaks (swtpm, or a resource manager's
    /// device).
    #[cfg(unix)]
    pub fn open(tcti: &crate::tcti::Tcti, metadata: Metadata) -> Result<KeyFileTpm> {
        let direct = Direct::open(tcti, false).ok_or_else(|| Error::NoTpm {
            tcti: tcti.as_str().to_owned(),
            detail: "key files without tpm2-tss need swtpm or a resource manager's device".to_owned(),
        })?;
        direct.check_reachable().map_err(|e| Error::NoTpm { tcti: tcti.as_str().to_owned(), detail: e.to_string() })?;
        Ok(KeyFileTpm { direct, metadata, reached_through: tcti.as_str().to_owned() })
    }

    /// Generates an HMAC key inside the TPM (or imports `secret`) and writes it to the key file at
    /// `path`, which must not exist; its record goes to the record file.
    pub fn create(&mut self, spec: &KeySpec, secret: Option<&Secret>, path: &Path) -> Result<KeyInfo> {
        if spec.pin.is_some() || !spec.pcrs.is_empty() || spec.auth_value_form {
            return Err(key_file_error(path, "a key with a PIN or PCR binding is made by the Linux build only"));
        }
        if let Some(secret) = secret {
            secret.check_length(spec.algorithm)?;
        }
        let label = spec.label.as_deref().map(check_label).transpose()?;
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(key_file_error(path, "it exists already: give a new file, or delete that key first"));
        }
        let metadata = self.metadata.clone();
        let lock = metadata.lock(crate::metadata::LOCK_WAIT)?;
        let handle = file_records::free_serial(&metadata)?;
        let origin = if secret.is_some() { Origin::Imported } else { Origin::Generated };
        let template = public::hmac_template(spec.algorithm, origin);
        let parent = self.storage_parent(None)?;
        let data = secret.map(|s| Zeroizing::new(s.bytes().to_vec())).unwrap_or_default();
        let made = self.direct.create(&parent.loaded.name, &parent.salt_key(), &data, &template);
        self.release(&parent);
        let (private, key_public) = made.map_err(|f| self.failed("making the key (TPM2_Create)", f))?;
        let key_name =
            public::sha256_name(&key_public).ok_or(Error::BadAnswer { operation: "making the key", rc: 0 })?;
        let file = KeyFile {
            empty_auth: true,
            parent: if parent.transient { STANDARD_PARENT } else { SRK_HANDLE },
            public: tpm2b(&key_public),
            private: tpm2b(&private),
        };
        let record = KeyRecord {
            key_public: Some(hex::encode(&key_public)),
            key_name: Some(hex::encode(&key_name)),
            storage_key_public: (!parent.transient).then(|| hex::encode(&parent.public)),
            storage_key_name: Some(hex::encode(&parent.loaded.name)),
            pcrs: Vec::new(),
            yubikey_mode: spec.yubikey_mode,
            label,
            key_private: Some(hex::encode(&file.private)),
            key_file: Some(absolute(path).display().to_string()),
        };
        let info = record.recorded_key(handle).ok_or(Error::BadAnswer { operation: "making the key", rc: 0 })?;
        // The file first, then its record: a process killed in between leaves a file without a
        // record (harmless: nothing uses it), never a record without its file.
        file.write(path).map_err(|e| key_file_error(path, &format!("cannot write it ({e})")))?;
        if let Err(cause) = lock.set(handle, Some(&record)) {
            let removed = std::fs::remove_file(path).is_ok();
            return Err(Error::NotRecorded { handle, removed, cause: Box::new(cause) });
        }
        Ok(KeyInfo { label: record.shown_label(), ..info })
    }

    /// The response of the key in the file at `path` to KeePassXC's `challenge` (0 to 64 bytes),
    /// as the YubiKey slot with the same secret gives it.
    pub fn challenge(&mut self, path: &Path, challenge: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (handle, record, info) = KeyFileTpm::key_in(&self.metadata, path)?;
        self.answer(handle, &record, &info, &ChallengeRule::KeePassXC.message_for(challenge, record.yubikey_mode)?)
    }

    /// The response of the key file with serial `handle` (its record's: the record alone loads
    /// it) to `challenge` padded by `rule`.
    pub fn challenge_serial(
        &mut self,
        handle: PersistentHandle,
        challenge: &[u8],
        rule: ChallengeRule,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (record, info) = KeyFileTpm::serial_in(&self.metadata, handle)?;
        self.answer(handle, &record, &info, &rule.message_for(challenge, record.yubikey_mode)?)
    }

    /// The key's HMAC of `message`: its parent checked against the record's pin, the key loaded
    /// from the record, checked to be the recorded key, used and flushed.
    fn answer(
        &mut self,
        handle: PersistentHandle,
        record: &KeyRecord,
        info: &KeyInfo,
        message: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        if info.needs_pin() || info.policy_bound {
            return Err(not_loadable(handle, "it needs a PIN or PCR policy, which this build does not support"));
        }
        let private = record
            .key_private
            .as_deref()
            .and_then(|text| hex::decode(text).ok())
            .filter(|bytes| bytes.len() >= 2)
            .ok_or_else(|| not_loadable(handle, "its record holds no wrapped private part"))?;
        let key_public = record.key_public.as_deref().and_then(|text| hex::decode(text).ok()).unwrap_or_default();
        let pinned =
            record.storage_key_name.as_deref().ok_or_else(|| not_loadable(handle, "its record pins no storage key"))?;
        let parent = self.storage_parent(Some((handle, pinned, record.storage_key_public.is_some())))?;
        let loaded = self.direct.load(parent.loaded.handle, &private[2..], &key_public);
        let answer = match loaded {
            Ok(key) if Some(hex::encode(&key.name)) == record.key_name => {
                let answer = self.direct.hmac(
                    key.handle,
                    &key.name,
                    &parent.salt_key(),
                    info.empty_policy,
                    message,
                    info.algorithm.digest_len(),
                );
                self.direct.flush(key.handle);
                answer.map_err(|f| self.failed("the challenge (TPM2_HMAC)", f))
            }
            Ok(key) => {
                self.direct.flush(key.handle);
                Err(Error::RecordMismatch { handle, path: self.record_path() })
            }
            Err(f) => Err(self.failed("loading the key file (TPM2_Load)", f)),
        };
        self.release(&parent);
        answer
    }

    /// The serial, record and key of the key file at `path`, by the records in `metadata` (no TPM
    /// command).
    pub fn key_in(metadata: &Metadata, path: &Path) -> Result<(PersistentHandle, KeyRecord, KeyInfo)> {
        let (handle, record) = file_records::recorded_file(metadata, path)?;
        let mut info = record
            .recorded_key(handle)
            .ok_or_else(|| not_loadable(handle, "its record's public area is missing or not the key it names"))?;
        info.label = record.shown_label();
        Ok((handle, record, info))
    }

    /// The record and key of the key file with serial `handle` in `metadata` (no TPM command).
    pub fn serial_in(metadata: &Metadata, handle: PersistentHandle) -> Result<(KeyRecord, KeyInfo)> {
        let record = metadata.get(handle)?.filter(|_| handle.is_file_key()).ok_or(Error::EmptyHandle { handle })?;
        let mut info = record
            .recorded_key(handle)
            .ok_or_else(|| not_loadable(handle, "its record's public area is missing or not the key it names"))?;
        info.label = record.shown_label();
        Ok((record, info))
    }

    /// The key files `metadata` records (no TPM command), with where each is kept.
    pub fn list_in(metadata: &Metadata) -> Result<Vec<(KeyInfo, Option<PathBuf>)>> {
        let content = metadata.content()?;
        Ok(file_records::recorded_file_keys(&content)
            .into_iter()
            .map(|info| {
                let path = content.record(info.handle).ok().flatten().and_then(|r| r.key_file).map(PathBuf::from);
                (info, path)
            })
            .collect())
    }

    /// Sets (or with `None` removes) the label of the key in the file at `path` (no TPM command).
    pub fn label_in(metadata: &Metadata, path: &Path, label: Option<&str>) -> Result<KeyInfo> {
        let label = label.map(check_label).transpose()?;
        let lock = metadata.lock(crate::metadata::LOCK_WAIT)?;
        let (handle, mut record, info) = KeyFileTpm::key_in(metadata, path)?;
        record.label = label;
        lock.set(handle, Some(&record))?;
        Ok(KeyInfo { label: record.shown_label(), ..info })
    }

    /// Deletes the key in the file at `path`: its record, and the file (no TPM command: a key file
    /// holds nothing in the TPM). `Ok(Some(path))`: the file could not be removed and is left there.
    pub fn delete_in(metadata: &Metadata, path: &Path) -> Result<Option<PathBuf>> {
        let (handle, record, _) = KeyFileTpm::key_in(metadata, path)?;
        file_records::delete_recorded(metadata, handle, record)
    }

    /// The storage parent: for a new key (`pinned` none) the persistent SRK if it is an ECC P-256
    /// storage key, else the standard primary; for a recorded key the one its record pins
    /// (`persistent`: the SRK), whose name must be the pinned one before anything is loaded under it.
    fn storage_parent(&mut self, pinned: Option<(PersistentHandle, &str, bool)>) -> Result<Parent> {
        let want_srk = pinned.is_none_or(|(_, _, persistent)| persistent);
        let srk = match want_srk.then(|| self.direct.public_at(SRK_HANDLE)) {
            Some(Ok(found)) => Some(found),
            // Not "no SRK": a blocked ReadPublic must not turn into a wrong storage key.
            #[cfg(windows)]
            Some(Err(blocked @ Fallback::Blocked(_))) => {
                return Err(self.failed("reading the SRK (TPM2_ReadPublic)", blocked))
            }
            _ => None,
        };
        let parent = match srk.and_then(|(public, name)| Some((public::storage_point(&public)?, public, name))) {
            Some(((x, y), public, name)) => {
                Parent { loaded: Loaded { handle: SRK_HANDLE, name }, public, x, y, transient: false }
            }
            None if let Some((handle, _, true)) = pinned => return Err(Error::StorageKeyChanged { handle }),
            None => {
                let primary = self
                    .direct
                    .create_primary(&public::ecc_srk_template())
                    .map_err(|f| self.failed("making the storage primary (TPM2_CreatePrimary)", f))?;
                let Some((x, y)) = public::storage_point(&primary.public) else {
                    self.direct.flush(primary.loaded.handle);
                    return Err(Error::BadAnswer { operation: "making the storage primary", rc: 0 });
                };
                Parent { loaded: primary.loaded, public: primary.public, x, y, transient: true }
            }
        };
        if let Some((handle, name, _)) = pinned {
            if hex::encode(&parent.loaded.name) != name {
                self.release(&parent);
                return Err(Error::StorageKeyChanged { handle });
            }
        }
        Ok(parent)
    }

    fn record_path(&self) -> String {
        self.metadata.path().map(|p| p.display().to_string()).unwrap_or_default()
    }

    fn release(&mut self, parent: &Parent) {
        if parent.transient {
            self.direct.flush(parent.loaded.handle);
        }
    }

    /// The error for a direct-path failure of `operation`.
    fn failed(&self, operation: &'static str, fallback: Fallback) -> Error {
        match fallback {
            Fallback::Io => Error::NoTpm {
                tcti: self.reached_through.clone(),
                detail: format!("{operation}: the connection failed"),
            },
            #[cfg(windows)]
            Fallback::Blocked(code) => Error::Blocked { command: crate::direct::wire::command_name(code) },
            Fallback::Refused(0) => Error::BadAnswer { operation, rc: 0 },
            Fallback::Refused(rc) => {
                crate::rc::classify_code(operation, rc, "the TPM refused it".to_owned(), &self.reached_through)
            }
        }
    }
}
