//! HMAC keys: their templates, creating or importing one under the storage parent, persisting
//! it with EvictControl, deleting it, and telling what sits at a persistent handle.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tss_esapi::attributes::{ObjectAttributes, ObjectAttributesBuilder};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::Provision;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Auth, Digest, HmacScheme, KeyedHashScheme, Public, PublicBuilder, PublicKeyedHashParameters, SensitiveData,
};

use crate::address::{KeyHandle, SLOT, SRK_HANDLE};
use crate::error::{Error, Result};
use crate::metadata::KeyRecord;
use crate::rc::{self, codes};
use crate::secret::{Pin, Secret};
use crate::session::SessionUse;
use crate::tpm::Tpm;

/// How long provisioning waits for another process that holds the metadata file's lock.
const PROVISIONING_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Handles tried when other programs keep taking the free one first.
const PERSIST_ATTEMPTS: usize = 5;

/// The hash of an HMAC key. SHA-1 is what a YubiKey slot computes and KeePassXC expects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// HMAC-SHA1, what a YubiKey slot computes (20-byte responses).
    #[default]
    Sha1,
    /// HMAC-SHA256 (32-byte responses).
    Sha256,
}

impl Algorithm {
    pub(crate) fn hashing(self) -> HashingAlgorithm {
        match self {
            Algorithm::Sha1 => HashingAlgorithm::Sha1,
            Algorithm::Sha256 => HashingAlgorithm::Sha256,
        }
    }

    /// Bytes in a response, and in an imported secret.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    fn parameters(self) -> PublicKeyedHashParameters {
        PublicKeyedHashParameters::new(KeyedHashScheme::Hmac { hmac_scheme: HmacScheme::new(self.hashing()) })
    }

    /// The algorithm of a keyed-hash object's parameters, if it is an HMAC key we support.
    /// (tss-esapi 7.7 has no getter for the scheme; its parameters compare by value.)
    fn of(parameters: &PublicKeyedHashParameters) -> Option<Algorithm> {
        [Algorithm::Sha1, Algorithm::Sha256].into_iter().find(|a| a.parameters() == *parameters)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Sha1 => "HMAC-SHA1",
            Algorithm::Sha256 => "HMAC-SHA256",
        })
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sha1" | "hmacsha1" => Ok(Algorithm::Sha1),
            "sha256" | "hmacsha256" => Ok(Algorithm::Sha256),
            _ => Err(format!("unknown algorithm \"{s}\"; use sha1 (YubiKey-compatible) or sha256")),
        }
    }
}

/// Where the key's secret came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Generated inside the TPM: no copy exists anywhere else.
    Generated,
    /// Imported from a secret the user holds (a YubiKey twin, or a recovery secret).
    Imported,
}

/// An HMAC key in the TPM's persistent storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The persistent handle the key is stored at.
    pub handle: KeyHandle,
    /// The key's hash.
    pub algorithm: Algorithm,
    /// Whether the key was generated in the TPM or imported.
    pub origin: Origin,
    /// Exempt from dictionary-attack lockout (keys without a PIN).
    pub no_da: bool,
    /// Bound to a policy (PCRs): usable only while the boot state matches.
    pub policy_bound: bool,
    /// The key cannot be duplicated to another TPM (fixedTPM).
    pub fixed_tpm: bool,
    /// The key cannot be duplicated to another parent (fixedParent).
    pub fixed_parent: bool,
    /// The user's name for the key, from its metadata record (which may be lost: then none).
    pub label: Option<String>,
}

impl KeyInfo {
    /// Needs a PIN: keys without one are noDA (exempt from the lockout), keys with one are not.
    pub fn needs_pin(&self) -> bool {
        !self.no_da
    }

    /// KeePassXC's serial: the handle as an unsigned 32-bit number.
    pub fn serial(&self) -> u32 {
        self.handle.serial()
    }

    /// KeePassXC's slot: always 1.
    pub fn slot(&self) -> i32 {
        SLOT
    }

    /// The key's name, e.g. "TPM 2.0 HMAC-SHA1 0x81000100", or with a label "TPM 2.0 HMAC-SHA1
    /// laptop" (KeePassXC adds " [serial] - Slot 1").
    pub fn display_name(&self) -> String {
        match &self.label {
            Some(label) => format!("TPM 2.0 {} {label}", self.algorithm),
            None => format!("TPM 2.0 {} {}", self.algorithm, self.handle),
        }
    }

    /// keepassxc-cli's `--yubikey` value for this key, e.g. "1:2164261120".
    pub fn keepassxc_address(&self) -> String {
        format!("{}:{}", self.slot(), self.serial())
    }
}

/// A key as `tpm-hmac list --json` and the Python module show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeySummary {
    /// The persistent handle, e.g. "0x81000100".
    pub handle: String,
    /// KeePassXC's serial: the handle as an unsigned 32-bit number.
    pub serial: u32,
    /// KeePassXC's slot: always 1.
    pub slot: i32,
    /// The key's hash.
    pub algorithm: Algorithm,
    /// Whether the key was generated in the TPM or imported.
    pub origin: Origin,
    /// The key's name as KeePassXC shows it (see [`KeyInfo::display_name`]).
    pub display_name: String,
    /// keepassxc-cli's `--yubikey` value for this key.
    pub keepassxc: String,
    /// Exempt from dictionary-attack lockout (keys without a PIN).
    pub no_da: bool,
    /// Usable only while the PCRs it is bound to keep their values.
    pub pcr_bound: bool,
    /// The user's name for the key, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl From<&KeyInfo> for KeySummary {
    fn from(key: &KeyInfo) -> Self {
        KeySummary {
            handle: key.handle.to_string(),
            serial: key.serial(),
            slot: key.slot(),
            algorithm: key.algorithm,
            origin: key.origin,
            display_name: key.display_name(),
            keepassxc: key.keepassxc_address(),
            no_da: key.no_da,
            pcr_bound: key.policy_bound,
            label: key.label.clone(),
        }
    }
}

/// What `create` and `import` are asked to make.
#[derive(Clone, Debug, Default)]
pub struct KeySpec {
    /// Where to persist the key; `None` takes the first free handle of [`crate::PROJECT_RANGE`].
    pub handle: Option<KeyHandle>,
    /// The key's hash (SHA-1 for a YubiKey-compatible key).
    pub algorithm: Algorithm,
    /// SHA-256 PCRs to bind the key to (empty: not bound).
    pub pcrs: Vec<u8>,
    /// A PIN the TPM checks (and rate-limits) on every use; `None`: no PIN, and the key is noDA.
    pub pin: Option<Pin>,
    /// The kind of YubiKey slot this key answers like (kept in its record).
    pub yubikey_mode: crate::challenge::SlotMode,
    /// A name for the key (see [`check_label`]), kept in its record.
    pub label: Option<String>,
}

/// The longest label, in characters.
pub const MAX_LABEL: usize = 32;

/// A label as the user typed it, trimmed, or why it cannot be one: labels are shown in
/// KeePassXC's key list, whose entries end in "[serial]", so no brackets, and no control
/// characters.
pub fn check_label(text: &str) -> Result<String> {
    let label = text.trim();
    let bad = |reason: String| Err(Error::BadLabel { reason });
    if label.is_empty() {
        return bad("it is empty".into());
    }
    if label.chars().count() > MAX_LABEL {
        return bad(format!("it has more than {MAX_LABEL} characters"));
    }
    if let Some(c) = label.chars().find(|c| c.is_control() || matches!(c, '[' | ']')) {
        return bad(format!("it holds {:?}; brackets and control characters cannot be shown", c));
    }
    Ok(label.to_owned())
}

/// The object at a persistent handle, described for a person when it is not one of our keys.
pub(crate) enum Object {
    Hmac(KeyInfo),
    /// Anything else; `storage` when it is a restricted decryption key (a possible parent).
    Other {
        what: String,
        storage: bool,
    },
}

/// `policy`: usable only through its authPolicy (PCR binding), not with its authValue.
fn attributes(origin: Origin, policy: bool, pin: bool) -> Result<ObjectAttributes> {
    ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(origin == Origin::Generated)
        .with_user_with_auth(!policy)
        .with_sign_encrypt(true)
        // Without a PIN exempt from dictionary-attack lockout, so unclean shutdowns never lock the
        // user out; with one, wrong guesses count and the TPM rate-limits them.
        .with_no_da(!pin)
        .build()
        .map_err(|e| Error::Wrapper { operation: "building the key attributes", text: e.to_string() })
}

pub(crate) fn hmac_template(algorithm: Algorithm, origin: Origin, policy: Option<Digest>, pin: bool) -> Result<Public> {
    let builder = match &policy {
        Some(digest) => PublicBuilder::new().with_auth_policy(digest.clone()),
        None => PublicBuilder::new(),
    };
    builder
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes(origin, policy.is_some(), pin)?)
        .with_keyed_hash_parameters(algorithm.parameters())
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(|e| Error::Wrapper { operation: "building the key template", text: e.to_string() })
}

/// Sorts a public area into "one of our HMAC keys" or a description of what it is.
pub(crate) fn describe(handle: KeyHandle, public: &Public) -> Object {
    let attrs = public.object_attributes();
    let storage = attrs.restricted() && attrs.decrypt() && !attrs.sign_encrypt();
    let what = match public {
        Public::KeyedHash { parameters, .. } => match Algorithm::of(parameters) {
            Some(algorithm) if attrs.sign_encrypt() && !attrs.decrypt() && !attrs.restricted() => {
                return Object::Hmac(KeyInfo {
                    handle,
                    algorithm,
                    origin: if attrs.sensitive_data_origin() { Origin::Generated } else { Origin::Imported },
                    no_da: attrs.no_da(),
                    policy_bound: !attrs.user_with_auth() && !public.auth_policy().value().is_empty(),
                    fixed_tpm: attrs.fixed_tpm(),
                    fixed_parent: attrs.fixed_parent(),
                    label: None,
                })
            }
            Some(_) => "a restricted keyed-hash key".to_owned(),
            None if !attrs.sign_encrypt() && !attrs.decrypt() => "a sealed data object".to_owned(),
            None => "a keyed-hash object with an unsupported scheme".to_owned(),
        },
        Public::Rsa { .. } | Public::Ecc { .. } => {
            let alg = if matches!(public, Public::Rsa { .. }) { "RSA" } else { "ECC" };
            if handle.value() >> 16 == 0x8101 {
                format!("an {alg} endorsement key")
            } else if storage && handle.value() == SRK_HANDLE {
                format!("an {alg} storage key, probably the SRK")
            } else if storage {
                format!("an {alg} storage key")
            } else if attrs.sign_encrypt() {
                format!("an {alg} signing key")
            } else {
                format!("an {alg} decryption key")
            }
        }
        Public::SymCipher { .. } => "a symmetric cipher key".to_owned(),
    };
    let storage = storage && matches!(public, Public::Rsa { .. } | Public::Ecc { .. });
    Object::Other { what, storage }
}

impl Tpm {
    /// The ESYS handle of the persistent object at `handle` (one ReadPublic the first time).
    pub(crate) fn resolve(&mut self, handle: KeyHandle) -> Result<ObjectHandle> {
        if let Some(object) = self.known.get(&handle) {
            return Ok(*object);
        }
        let tpm_handle = persistent_tpm_handle(handle)?;
        let object = self.call(|ctx| ctx.tr_from_tpm_public(tpm_handle)).map_err(|(code, e)| {
            if rc::tpm_code(code) == Some(codes::HANDLE) {
                Error::EmptyHandle { handle }
            } else {
                rc::classify("reading the object at the handle", e, &self.tcti)
            }
        })?;
        self.known.insert(handle, object);
        Ok(object)
    }

    /// Forgets a cached ESYS handle (the object was deleted, or the cache went stale).
    pub(crate) fn forget(&mut self, handle: KeyHandle) {
        self.records.remove(&handle);
        if let Some(mut object) = self.known.remove(&handle) {
            let _ = self.ctx.tr_close(&mut object);
        }
    }

    /// The public area of the object at `handle` (one ReadPublic; not authenticated).
    pub(crate) fn public_at(&mut self, handle: KeyHandle) -> Result<Public> {
        let object = self.resolve(handle)?;
        match self.call(|ctx| ctx.read_public(object.into())) {
            Ok((public, _, _)) => Ok(public),
            Err((code, e)) => {
                // A cached handle of a key another program deleted meanwhile.
                self.forget(handle);
                if rc::tpm_code(code) == Some(codes::HANDLE) {
                    return Err(Error::EmptyHandle { handle });
                }
                Err(rc::classify("reading the key", e, &self.tcti))
            }
        }
    }

    /// What is stored at `handle`.
    pub(crate) fn object_at(&mut self, handle: KeyHandle) -> Result<Object> {
        self.public_at(handle).map(|public| describe(handle, &public))
    }

    /// The HMAC key at `handle`, or why there is none.
    pub fn key_info(&mut self, handle: KeyHandle) -> Result<KeyInfo> {
        match self.object_at(handle)? {
            Object::Hmac(info) => Ok(self.labelled(info)),
            Object::Other { what, .. } => Err(Error::NotHmacKey { handle, what }),
        }
    }

    /// `info` with the label of its record, when the record is this key's (a missing or broken
    /// file only loses the label).
    pub(crate) fn labelled(&mut self, mut info: KeyInfo) -> KeyInfo {
        let Ok(Some(record)) = self.metadata.get(info.handle) else { return info };
        let name = self.resolve(info.handle).and_then(|object| self.name_of(object)).ok();
        if name.is_some() && record.key_name == name {
            info.label = record.label;
        }
        info
    }

    /// Gives the key at `handle` the label `label` (or, with `None`, none), in its record.
    pub fn set_label(&mut self, handle: KeyHandle, label: Option<&str>) -> Result<KeyInfo> {
        let label = label.map(check_label).transpose()?;
        let object = self.resolve(handle)?;
        let key = self.pinned_key(handle, object)?;
        let metadata = self.metadata.clone();
        let lock = metadata.lock(PROVISIONING_LOCK_WAIT)?;
        let mut record = metadata.get(handle)?.unwrap_or_else(|| key.record.clone());
        record.label = label;
        lock.set(handle, Some(&record))?;
        self.records.remove(&handle);
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
        let lock = metadata.lock(PROVISIONING_LOCK_WAIT)?;
        let handle = match spec.handle {
            Some(handle) => {
                metadata.get(handle)?;
                self.ensure_free(handle)?;
                handle
            }
            None => {
                let handle = self.first_free_handle()?;
                metadata.get(handle)?;
                handle
            }
        };
        let origin = if secret.is_some() { Origin::Imported } else { Origin::Generated };
        let with_pin = spec.pin.is_some();
        let policy = if spec.pcrs.is_empty() { None } else { Some(self.policy_digest(&spec.pcrs, with_pin)?) };
        let template = hmac_template(spec.algorithm, origin, policy, with_pin)?;
        let auth = spec
            .pin
            .as_ref()
            .map(|pin| Auth::try_from(pin.auth_value().to_vec()))
            .transpose()
            .map_err(|e| Error::BadSecret { reason: e.to_string() })?;
        let sensitive = secret
            .map(|s| SensitiveData::try_from(s.bytes()))
            .transpose()
            .map_err(|e| Error::BadSecret { reason: e.to_string() })?;

        let parent = self.storage_parent(true)?;
        // Pinned so that challenges can tell this storage key from a stand-in.
        let parent_name = self.name_of(parent.handle.into());
        let parent_public =
            if parent.is_transient() { None } else { self.public_at(KeyHandle::new(crate::address::SRK_HANDLE)?).ok() };
        // The new key's secret and authValue (inSensitive) cross the bus encrypted: Create runs
        // in a session salted with the parent, with parameter decryption on.
        let created = self.create_encrypted(parent.handle, &template, auth, sensitive);
        let loaded = created.and_then(|key| {
            self.with_password(|tpm| {
                tpm.run("loading the key", |ctx| {
                    ctx.load(parent.handle, key.out_private.clone(), key.out_public.clone())
                })
            })
            .map(|loaded| (loaded, key.out_public))
        });
        self.release_parent(parent);
        let (loaded, public) = loaded?;
        let loaded: ObjectHandle = loaded.into();

        let (handle, persisted) = self.persist(loaded, handle, spec.handle.is_none());
        let object = persisted?;
        self.known.insert(handle, object);
        let recorded = (|| {
            let key_name = self.name_of(object)?;
            let key_public = crate::pinned::public_and_name(&public)
                .filter(|(_, name)| *name == key_name)
                .map(|(bytes, _)| hex::encode(bytes));
            let storage_key_name = parent_name?;
            let storage_key_public = parent_public
                .as_ref()
                .and_then(crate::pinned::public_and_name)
                .filter(|(_, name)| *name == storage_key_name)
                .map(|(bytes, _)| hex::encode(bytes));
            let record = KeyRecord {
                key_name: Some(key_name),
                key_public,
                storage_key_name: Some(storage_key_name),
                storage_key_public,
                pcrs: spec.pcrs.clone(),
                yubikey_mode: spec.yubikey_mode,
                label: label.clone(),
            };
            lock.set(handle, Some(&record))
        })();
        if let Err(cause) = recorded {
            // A key without its record cannot be checked against a swapped storage key (and a
            // PCR-bound one cannot be used at all): take it out again.
            let removed = self.evict(handle, object).is_ok();
            return Err(Error::NotRecorded { handle, removed, cause: Box::new(cause) });
        }
        drop(lock);
        self.key_info(handle)
    }

    /// EvictControl of the loaded key to `handle`, or with `any_handle` to the next free one when
    /// another program took `handle` meanwhile. Returns the handle and the key's new ESYS handle
    /// (no ReadPublic needed to use it). When the answer is lost on the way, the handle is looked
    /// at over a new connection before failure is reported: the key may be persisted all the same.
    fn persist(
        &mut self,
        loaded: ObjectHandle,
        mut handle: KeyHandle,
        any_handle: bool,
    ) -> (KeyHandle, Result<ObjectHandle>) {
        let key_name = self.name_of(loaded);
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
                    _ => rc::classify("persisting the key", e, &tpm.tcti),
                })
            });
            if let (Err(Error::HandleOccupied { .. }), true) = (&persisted, any_handle) {
                if let Ok(next) = self.first_free_handle() {
                    handle = next;
                    continue;
                }
            }
            // The transient copy is not needed any more, whatever happened.
            let _ = self.ctx.flush_context(loaded);
            return match persisted {
                Err(e @ (Error::NoTpm { .. } | Error::BadAnswer { .. })) => {
                    let found = key_name.as_ref().ok().and_then(|name| self.persisted_as(handle, name));
                    (handle, found.ok_or(e))
                }
                other => (handle, other),
            };
        }
        let _ = self.ctx.flush_context(loaded);
        (handle, Err(Error::HandleOccupied { handle, what: "an object another program put there just now".to_owned() }))
    }

    /// The key named `name` at `handle`, looked up over a new connection.
    fn persisted_as(&mut self, handle: KeyHandle, name: &str) -> Option<ObjectHandle> {
        self.reconnect().ok()?;
        let object = self.resolve(handle).ok()?;
        (self.name_of(object).ok()? == name).then_some(object)
    }

    /// TPM2_Create in a session salted with `parent` that encrypts the first command parameter,
    /// the inSensitive holding the secret and the authValue.
    fn create_encrypted(
        &mut self,
        parent: tss_esapi::handles::KeyHandle,
        template: &Public,
        auth: Option<Auth>,
        sensitive: Option<SensitiveData>,
    ) -> Result<tss_esapi::structures::CreateKeyResult> {
        let session = self.salted_session(Some(parent), SessionType::Hmac, SessionUse::Provisioning)?;
        self.ctx.set_sessions((Some(session), None, None));
        let created =
            self.call(|ctx| ctx.create(parent, template.clone(), auth.clone(), sensitive.clone(), None, None));
        self.ctx.clear_sessions();
        // Not continued: the session ends with a successful command.
        match &created {
            Ok(_) => self.forget_ended_session(session),
            Err(_) => self.flush_session(session),
        }
        created.map_err(|(_, e)| rc::classify("creating the key", e, &self.tcti))
    }

    /// Removes the HMAC key at `handle` from the TPM. Refuses anything that is not an HMAC key.
    pub fn delete_key(&mut self, handle: KeyHandle) -> Result<()> {
        self.key_info(handle)?;
        let object = self.resolve(handle)?;
        self.evict(handle, object)?;
        // The key is gone; a record left behind is replaced when a key is made at this handle.
        let _ = self.metadata.set(handle, None);
        Ok(())
    }

    fn evict(&mut self, handle: KeyHandle, object: ObjectHandle) -> Result<()> {
        let tcti = self.tcti.clone();
        self.with_password(|tpm| {
            tpm.call(|ctx| {
                ctx.evict_control(Provision::Owner, object, Persistent::Persistent(persistent_handle(handle)?))
            })
            .map_err(|(_, e)| rc::classify("deleting the key", e, &tcti))
        })?;
        // EvictControl closed the ESYS handle itself.
        self.known.remove(&handle);
        self.records.remove(&handle);
        Ok(())
    }

    /// Fails with `HandleOccupied` unless `handle` is empty.
    fn ensure_free(&mut self, handle: KeyHandle) -> Result<()> {
        match self.object_at(handle) {
            Err(Error::EmptyHandle { .. }) => Ok(()),
            Err(e) => Err(e),
            Ok(Object::Hmac(info)) => Err(Error::HandleOccupied { handle, what: format!("an {} key", info.algorithm) }),
            Ok(Object::Other { what, .. }) => Err(Error::HandleOccupied { handle, what }),
        }
    }

    fn first_free_handle(&mut self) -> Result<KeyHandle> {
        let used = self.persistent_handles()?;
        crate::address::PROJECT_RANGE.clone().find(|h| !used.contains(h)).map(KeyHandle::new).transpose()?.ok_or_else(
            || Error::NoFreeHandle {
                detail: format!(
                    "all of 0x{:08x}..=0x{:08x} are in use",
                    crate::address::PROJECT_RANGE.start(),
                    crate::address::PROJECT_RANGE.end()
                ),
            },
        )
    }

    /// Runs `f` with a password session (empty password) as the first authorisation.
    pub(crate) fn with_password<T, E>(
        &mut self,
        f: impl FnOnce(&mut Tpm) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.ctx.set_sessions((Some(AuthSession::Password), None, None));
        let result = f(self);
        self.ctx.clear_sessions();
        result
    }
}

pub(crate) fn persistent_handle(handle: KeyHandle) -> tss_esapi::Result<PersistentTpmHandle> {
    PersistentTpmHandle::new(handle.value())
}

fn persistent_tpm_handle(handle: KeyHandle) -> Result<TpmHandle> {
    persistent_handle(handle).map(TpmHandle::Persistent).map_err(|_| Error::BadHandle { input: handle.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keepassxc_can_show() {
        assert_eq!(check_label("  laptop ").unwrap(), "laptop");
        assert_eq!(check_label("Büro-Rechner 2").unwrap(), "Büro-Rechner 2");
        for bad in ["", "   ", "a[b", "x]", "tab\there", "new\nline", &"x".repeat(33)] {
            assert!(matches!(check_label(bad), Err(Error::BadLabel { .. })), "{bad:?}");
        }
    }
}
