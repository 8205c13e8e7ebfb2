//! The encrypted session challenges run in. It is salted with the storage key (the SRK at
//! 0x81000001, else the ECC primary from the SRK template) and has the TPM encrypt its response
//! with AES-128-CFB, so the HMAC crosses the bus between TPM and CPU encrypted. (The challenge
//! is not encrypted: it is the KDF seed, stored in clear in the database header.) The storage
//! key's name is compared with the one pinned when the key was provisioned: a swapped TPM or an
//! interposer answering ReadPublic is refused.
//!
//! By default the HMAC ends its session (continueSession clear), so nothing stays loaded in the
//! TPM even when the process ends without cleaning up, as KeePassXC's does: a TPM without a
//! resource manager has only three session slots. Long-lived callers that close the connection
//! properly can keep the session (`Tpm::set_session_reuse`), making a warm challenge one command.

use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::SymmetricDefinition;

use crate::address::KeyHandle;
use crate::error::{Error, Result};
use crate::metadata::KeyRecord;
use crate::tpm::Tpm;

/// The session for the next challenge.
pub(crate) struct Session {
    pub(crate) handle: AuthSession,
    /// Name (hex) of the storage key that salted it.
    pub(crate) salted_by: String,
}

impl Tpm {
    /// The encrypting session for a challenge to `key`, started when there is none.
    pub(crate) fn encrypting_session(&mut self, key: KeyHandle, record: Option<&KeyRecord>) -> Result<AuthSession> {
        if self.session.is_none() {
            self.session = Some(self.start_salted_session()?);
        }
        let session = self.session.as_ref().expect("started above");
        check_storage_key(key, record, &session.salted_by)?;
        Ok(session.handle)
    }

    /// The metadata record of `key`, if it describes this very key (same TPM name); read once
    /// per connection and key.
    pub(crate) fn record_of(&mut self, key: KeyHandle, object: ObjectHandle) -> Option<KeyRecord> {
        if let Some(cached) = self.records.get(&key) {
            return cached.clone();
        }
        let record = self.metadata.get(key).filter(|r| r.key_name.is_some() && r.key_name == self.name_of(object).ok());
        self.records.insert(key, record.clone());
        record
    }

    /// After a challenge: the session ended with it unless it is kept.
    pub(crate) fn session_used(&mut self) {
        if !self.session_reuse {
            if let Some(session) = self.session.take() {
                self.forget_ended_session(session.handle);
            }
        }
    }

    /// Flushes a session that is still loaded (after a failure, or one not meant to continue).
    pub(crate) fn flush_session(&mut self, session: AuthSession) {
        let _ = self.ctx.flush_context(object_of(session));
    }

    /// Drops ESYS's record of a session the TPM has ended, so nothing tries to flush it later.
    pub(crate) fn forget_ended_session(&mut self, session: AuthSession) {
        let mut object = object_of(session);
        let _ = self.ctx.tr_close(&mut object);
    }

    /// Ends the cached session (after an error: the TPM may have restarted and lost it).
    pub(crate) fn end_session(&mut self) {
        if let Some(session) = self.session.take() {
            self.flush_session(session.handle);
        }
    }

    fn start_salted_session(&mut self) -> Result<Session> {
        let parent = self.storage_parent(false)?;
        let salted_by = self.name_of(parent.handle.into());
        let started = self.run("starting the encrypted session", |ctx| {
            ctx.start_auth_session(
                Some(parent.handle),
                None,
                None,
                SessionType::Hmac,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
        });
        // A session stays salted after its salt key is flushed.
        self.release_parent(parent);
        let handle = started?.ok_or_else(|| Error::Wrapper {
            operation: "starting the encrypted session",
            text: "the TPM returned no session".to_owned(),
        })?;
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_decrypt(false)
            .with_encrypt(true)
            .with_continue_session(self.session_reuse)
            .build();
        if let Err(e) =
            self.run("setting the session attributes", |ctx| ctx.tr_sess_set_attributes(handle, attributes, mask))
        {
            self.flush_session(handle);
            return Err(e);
        }
        Ok(Session { handle, salted_by: salted_by? })
    }

    /// The TPM name (hex) of a loaded object; ESYS keeps it, no TPM command is sent.
    pub(crate) fn name_of(&mut self, object: ObjectHandle) -> Result<String> {
        self.run("reading an object's name", |ctx| ctx.tr_get_name(object)).map(|name| hex::encode(name.value()))
    }
}

pub(crate) fn object_of(session: AuthSession) -> ObjectHandle {
    ObjectHandle::from(SessionHandle::from(session))
}

/// Refuses a session salted by another storage key than the one pinned for `key`.
pub(crate) fn check_storage_key(key: KeyHandle, record: Option<&KeyRecord>, salted_by: &str) -> Result<()> {
    match record.and_then(|r| r.storage_key_name.as_deref()) {
        Some(pinned) if pinned != salted_by => Err(Error::StorageKeyChanged { handle: key }),
        _ => Ok(()),
    }
}
