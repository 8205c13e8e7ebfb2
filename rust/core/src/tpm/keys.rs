//! Creating, importing, persisting, reading and deleting keys (the `impl Tpm` of [`crate::key`]).

use crate::address::{BadHandle, PersistentHandle};
use crate::error::{Error, Result};
use crate::key::{
    check_label, describe, hmac_template, key_policy, persistent_handle, KeyInfo, KeySpec, Object, Origin,
};
use crate::metadata::KeyRecord;
use crate::rc::{self, codes};
use crate::secret::Secret;
use crate::tpm::session::SessionUse;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle as EsysKeyHandle, ObjectHandle, TpmHandle};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::Provision;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Auth, Public, SensitiveData};

use super::Tpm;

/// A key just created and loaded, with what its record pins of the storage parent.
struct MadeKey {
    loaded: ObjectHandle,
    public: Public,
    parent_name: Result<String>,
    parent_public: Option<Public>,
}

/// Handles tried when other programs keep taking the free one first.
const PERSIST_ATTEMPTS: usize = 5;

impl Tpm {
    /// The ESYS handle of the persistent object at `handle` (one ReadPublic the first time).
    pub(crate) fn resolve(&mut self, handle: PersistentHandle) -> Result<ObjectHandle> {
        if let Some(object) = self.keys.object(handle) {
            return Ok(object);
        }
        if handle.is_file_key() {
            let object = self.load_file_key(handle)?;
            self.keys.resolved(handle, object);
            return Ok(object);
        }
        let tpm_handle = persistent_tpm_handle(handle)?;
        self.esys()?;
        let object = self.call(|ctx| ctx.tr_from_tpm_public(tpm_handle)).map_err(|(code, e)| {
            if rc::tpm_code(code) == Some(codes::HANDLE) {
                Error::EmptyHandle { handle }
            } else {
                rc::classify("reading the object at the handle", e, self.tcti.as_str())
            }
        })?;
        self.keys.resolved(handle, object);
        Ok(object)
    }

    /// Forgets a cached ESYS handle (the object was deleted, or the cache went stale); a loaded
    /// key file is flushed from the TPM.
    pub(crate) fn forget(&mut self, handle: PersistentHandle) {
        if let Some(object) = self.keys.forget(handle) {
            if handle.is_file_key() {
                self.flush(object);
            } else {
                self.close(object);
            }
        }
    }

    /// The public area of the object at `handle` (one ReadPublic; not authenticated).
    pub(crate) fn public_at(&mut self, handle: PersistentHandle) -> Result<Public> {
        let object = self.resolve(handle)?;
        match self.call(|ctx| ctx.read_public(object.into())) {
            Ok((public, _, _)) => Ok(public),
            Err((code, e)) => {
                // A cached handle of a key another program deleted meanwhile.
                self.forget(handle);
                if rc::tpm_code(code) == Some(codes::HANDLE) {
                    return Err(Error::EmptyHandle { handle });
                }
                Err(rc::classify("reading the key", e, self.tcti.as_str()))
            }
        }
    }

    /// What is stored at `handle`.
    pub(crate) fn object_at(&mut self, handle: PersistentHandle) -> Result<Object> {
        self.public_at(handle).map(|public| describe(handle, &public))
    }

    /// The HMAC key at `handle`, or why there is none.
    pub fn key_info(&mut self, handle: PersistentHandle) -> Result<KeyInfo> {
        match self.object_at(handle)? {
            Object::Hmac(info) => Ok(self.labelled(info)),
            Object::Other { what, .. } => Err(Error::NotHmacKey { handle, what }),
        }
    }

    /// `info` with the label of its record, when the record is this key's and the label one
    /// that [`check_label`] allows (a missing or broken file, or an edited label, only loses the
    /// label).
    pub(crate) fn labelled(&mut self, mut info: KeyInfo) -> KeyInfo {
        let Ok(Some(record)) = self.record(info.handle) else { return info };
        let name = self.listed_name(info.handle);
        if name.is_some() && record.key_name == name {
            info.label = record.shown_label();
        }
        info
    }

    /// The TPM name (hex) of the object at `handle` as this connection read it: from ESYS, or
    /// from the direct path's listing (no command); else resolved through ESYS (one ReadPublic).
    fn listed_name(&mut self, handle: PersistentHandle) -> Option<String> {
        if self.keys.object(handle).is_none() {
            if let Some(name) = self.keys.name(handle) {
                return Some(hex::encode(name));
            }
        }
        self.resolve(handle).and_then(|object| self.esys_name(object)).ok()
    }

    /// Gives the key at `handle` the label `label` (or, with `None`, none), in its record.
    pub fn set_label(&mut self, handle: PersistentHandle, label: Option<&str>) -> Result<KeyInfo> {
        let label = label.map(check_label).transpose()?;
        let object = self.resolve(handle)?;
        let key = self.pinned_key(handle, object)?;
        let metadata = self.metadata.clone();
        let lock = metadata.lock(crate::metadata::LOCK_WAIT)?;
        let mut record = metadata.get(handle)?.unwrap_or_else(|| key.record.clone());
        record.label = label;
        lock.set(handle, Some(&record))?;
        self.keys.record_changed(handle);
        self.key_info(handle)
    }

    /// Generates an HMAC key inside the TPM and persists it. The secret never leaves the TPM:
    /// there is no backup, and whatever it protects depends on this one chip.
    pub fn create_key(&mut self, spec: &KeySpec) -> Result<KeyInfo> {
        self.provision(spec, None)
    }

    /// Imports `secret` (e.g. a YubiKey slot's HMAC secret) as an HMAC key and persists it.
    pub fn import_key(&mut self, spec: &KeySpec, secret: &Secret) -> Result<KeyInfo> {
        secret.check_length(spec.algorithm)?;
        self.provision(spec, Some(secret))
    }

    fn provision(&mut self, spec: &KeySpec, secret: Option<&Secret>) -> Result<KeyInfo> {
        // The record is written under the file's lock, taken before the TPM is touched: a file
        // that cannot be written stops here, and concurrent provisioning never loses a record.
        let label = spec.label.as_deref().map(check_label).transpose()?;
        let metadata = self.metadata.clone();
        let lock = metadata.lock(crate::metadata::LOCK_WAIT)?;
        let handle = self.handle_for(spec, &metadata)?;
        let (template, auth, sensitive) = self.new_key_inputs(spec, secret)?;
        let made = self.create_and_load(&template, auth, sensitive)?;
        let (handle, persisted) = self.persist(made.loaded, handle, spec.handle.is_none());
        let object = persisted?;
        self.keys.resolved(handle, object);
        let record = self.record_of_new_key(object, made, spec, label);
        if let Err(cause) = record.and_then(|record| lock.set(handle, Some(&record))) {
            // A key without its record cannot be checked against a swapped storage key (and a
            // PCR-bound one cannot be used at all): take it out again.
            let removed = self.evict(handle, object).is_ok();
            return Err(Error::NotRecorded { handle, removed, cause: Box::new(cause) });
        }
        drop(lock);
        self.key_info(handle)
    }

    /// Where the new key goes: the handle asked for, if it is free, else the first free one of
    /// the project's range; either way one whose record (if any) can be read.
    fn handle_for(&mut self, spec: &KeySpec, metadata: &crate::metadata::Metadata) -> Result<PersistentHandle> {
        let handle = match spec.handle {
            Some(handle) => {
                self.ensure_free(handle)?;
                handle
            }
            None => self.first_free_handle()?,
        };
        metadata.get(handle)?;
        Ok(handle)
    }

    /// The new key's template (its policy: PCRs, the empty policy, or its authValue), authValue (the
    /// PIN's) and secret (imported, else generated in the TPM).
    pub(super) fn new_key_inputs(
        &mut self,
        spec: &KeySpec,
        secret: Option<&Secret>,
    ) -> Result<(Public, Option<Auth>, Option<SensitiveData>)> {
        let origin = if secret.is_some() { Origin::Imported } else { Origin::Generated };
        let with_pin = spec.pin.is_some();
        let pcr_policy = if spec.pcrs.is_empty() { None } else { Some(self.policy_digest(&spec.pcrs, with_pin)?) };
        let template = hmac_template(spec.algorithm, origin, key_policy(spec, pcr_policy)?, with_pin)?;
        let bad = |e: tss_esapi::Error| Error::BadSecret { reason: e.to_string() };
        let auth = spec.pin.as_ref().map(|pin| Auth::try_from(pin.auth_value().to_vec())).transpose().map_err(bad)?;
        let sensitive = secret.map(|s| SensitiveData::try_from(s.bytes())).transpose().map_err(bad)?;
        Ok((template, auth, sensitive))
    }

    /// Creates the key under the storage parent and loads it (transient, for EvictControl), with
    /// what its record pins of the parent.
    fn create_and_load(
        &mut self,
        template: &Public,
        auth: Option<Auth>,
        sensitive: Option<SensitiveData>,
    ) -> Result<MadeKey> {
        self.with_parent(true, |tpm, parent| {
            // Pinned so that challenges can tell this storage key from a stand-in.
            let parent_name = tpm.esys_name(parent.handle.into());
            let parent_public = if parent.is_transient() {
                None
            } else {
                tpm.public_at(PersistentHandle::new(crate::address::SRK_HANDLE)?).ok()
            };
            // The new key's secret and authValue (inSensitive) cross the bus encrypted: Create runs
            // in a session salted with the parent, with parameter decryption on.
            let key = tpm.create_encrypted(parent.handle, template, auth, sensitive)?;
            let loaded = tpm.with_password(|tpm| {
                tpm.run("loading the key", |ctx| {
                    ctx.load(parent.handle, key.out_private.clone(), key.out_public.clone())
                })
            })?;
            Ok(MadeKey { loaded: loaded.into(), public: key.out_public, parent_name, parent_public })
        })
    }

    /// The record of a key just made and persisted as `object`: its name and public area, the
    /// storage key's, and what `spec` says.
    fn record_of_new_key(
        &mut self,
        object: ObjectHandle,
        made: MadeKey,
        spec: &KeySpec,
        label: Option<String>,
    ) -> Result<KeyRecord> {
        let key_name = self.esys_name(object)?;
        let pinned_public = |public: &Public, name: &str| {
            crate::tpm::pinned::public_and_name(public).filter(|(_, n)| n == name).map(|(bytes, _)| hex::encode(bytes))
        };
        let storage_key_name = made.parent_name?;
        Ok(KeyRecord {
            key_public: pinned_public(&made.public, &key_name),
            key_name: Some(key_name),
            storage_key_public: made.parent_public.as_ref().and_then(|p| pinned_public(p, &storage_key_name)),
            storage_key_name: Some(storage_key_name),
            pcrs: spec.pcrs.clone(),
            yubikey_mode: spec.yubikey_mode,
            label,
            ..KeyRecord::default()
        })
    }

    /// EvictControl of the loaded key to `handle`, or with `any_handle` to the next free one when
    /// another program took `handle` meanwhile. Returns the handle and the key's new ESYS handle
    /// (no ReadPublic needed to use it). When the answer is lost on the way, the handle is looked
    /// at over a new connection before failure is reported: the key may be persisted all the same.
    fn persist(
        &mut self,
        loaded: ObjectHandle,
        mut handle: PersistentHandle,
        any_handle: bool,
    ) -> (PersistentHandle, Result<ObjectHandle>) {
        let key_name = self.esys_name(loaded);
        for _ in 0..PERSIST_ATTEMPTS {
            let persisted = self.with_password(|tpm| {
                tpm.call(|ctx| {
                    ctx.evict_control(Provision::Owner, loaded, Persistent::Persistent(persistent_handle(handle)?))
                })
                .map_err(|(code, e)| match rc::tpm_code(code) {
                    Some(codes::NV_DEFINED) => Error::HandleOccupied { handle, what: "an object".to_owned() },
                    Some(codes::NV_SPACE) => {
                        Error::NoFreeHandle { detail: "the TPM's persistent memory is full".to_owned() }
                    }
                    _ => rc::classify("persisting the key", e, tpm.tcti.as_str()),
                })
            });
            if let (Err(Error::HandleOccupied { .. }), true) = (&persisted, any_handle) {
                if let Ok(next) = self.first_free_handle() {
                    handle = next;
                    continue;
                }
            }
            // The transient copy is not needed any more, whatever happened.
            self.flush(loaded);
            return match persisted {
                Err(e @ (Error::NoTpm { .. } | Error::BadAnswer { .. })) => {
                    let found = key_name.as_ref().ok().and_then(|name| self.persisted_as(handle, name));
                    (handle, found.ok_or(e))
                }
                other => (handle, other),
            };
        }
        self.flush(loaded);
        (handle, Err(Error::HandleOccupied { handle, what: "an object another program put there just now".to_owned() }))
    }

    /// The key named `name` at `handle`, looked up over a new connection.
    fn persisted_as(&mut self, handle: PersistentHandle, name: &str) -> Option<ObjectHandle> {
        self.reconnect().ok()?;
        let object = self.resolve(handle).ok()?;
        (self.esys_name(object).ok()? == name).then_some(object)
    }

    /// TPM2_Create in a session salted with `parent` that encrypts the first command parameter,
    /// the inSensitive holding the secret and the authValue.
    pub(super) fn create_encrypted(
        &mut self,
        parent: EsysKeyHandle,
        template: &Public,
        auth: Option<Auth>,
        sensitive: Option<SensitiveData>,
    ) -> Result<tss_esapi::structures::CreateKeyResult> {
        let session = self.salted_session(Some(parent), SessionType::Hmac, SessionUse::Provisioning)?;
        let created = self.call_in_one_shot_session(session, |ctx| {
            ctx.create(parent, template.clone(), auth.clone(), sensitive.clone(), None, None)
        });
        created.map_err(|(_, e)| rc::classify("creating the key", e, self.tcti.as_str()))
    }

    /// Removes the HMAC key at `handle` from the TPM. Refuses anything that is not an HMAC key.
    /// On `Ok` the key is gone; `Some(error)` says why its record stays in the metadata file (the
    /// record then fails closed: another key put at this handle by another tool is refused, one
    /// made by `create`/`import` replaces it).
    pub fn delete_key(&mut self, handle: PersistentHandle) -> Result<Option<Error>> {
        if handle.is_file_key() {
            return Err(Error::KeyFile {
                path: handle.to_string(),
                reason: "it is a key file, not a persistent key: delete it with its file".to_owned(),
            });
        }
        self.key_info(handle)?;
        let object = self.resolve(handle)?;
        self.evict(handle, object)?;
        Ok(self.metadata.set(handle, None).err())
    }

    fn evict(&mut self, handle: PersistentHandle, object: ObjectHandle) -> Result<()> {
        let tcti = self.tcti.clone();
        self.with_password(|tpm| {
            tpm.call(|ctx| {
                ctx.evict_control(Provision::Owner, object, Persistent::Persistent(persistent_handle(handle)?))
            })
            .map_err(|(_, e)| rc::classify("deleting the key", e, tcti.as_str()))
        })?;
        // EvictControl closed the ESYS handle itself.
        self.keys.forget(handle);
        Ok(())
    }

    /// Fails with `HandleOccupied` unless `handle` is empty.
    fn ensure_free(&mut self, handle: PersistentHandle) -> Result<()> {
        match self.object_at(handle) {
            Err(Error::EmptyHandle { .. }) => Ok(()),
            Err(e) => Err(e),
            Ok(Object::Hmac(info)) => Err(Error::HandleOccupied { handle, what: format!("an {} key", info.algorithm) }),
            Ok(Object::Other { what, .. }) => Err(Error::HandleOccupied { handle, what }),
        }
    }

    fn first_free_handle(&mut self) -> Result<PersistentHandle> {
        let used = self.persistent_handles()?;
        crate::address::PROJECT_RANGE
            .clone()
            .find(|h| !used.contains(h))
            .map(PersistentHandle::new)
            .transpose()?
            .ok_or_else(|| Error::NoFreeHandle {
                detail: format!(
                    "all of 0x{:08x}..=0x{:08x} are in use",
                    crate::address::PROJECT_RANGE.start(),
                    crate::address::PROJECT_RANGE.end()
                ),
            })
    }

    /// Runs `f` with a password session (empty password) as the first authorisation.
    pub(crate) fn with_password<T, E>(
        &mut self,
        f: impl FnOnce(&mut Tpm) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        // Opened here so that the session is set where `f` runs; a context that cannot be
        // opened is reported by `f`'s own command.
        let _ = self.esys();
        self.with_session(AuthSession::Password, f)
    }
}

fn persistent_tpm_handle(handle: PersistentHandle) -> Result<TpmHandle> {
    persistent_handle(handle)
        .map(TpmHandle::Persistent)
        .map_err(|_| Error::BadHandle(BadHandle { input: handle.to_string() }))
}
