//! The encrypted session challenges run in. It is salted with the storage key (the SRK at
//! 0x81000001, else the ECC primary from the SRK template) and encrypts the first parameter
//! both ways with AES-128-CFB, so the HMAC response crosses the bus between TPM and CPU
//! encrypted. The storage key's name is compared with the one pinned when the key was
//! provisioned: a swapped TPM or an interposer answering ReadPublic is refused.

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

/// A session kept for the life of the connection, so a warm challenge stays one command.
pub(crate) struct Session {
    pub(crate) handle: AuthSession,
    /// Name (hex) of the storage key that salted it.
    pub(crate) salted_by: String,
}

impl Tpm {
    /// The encrypting session for a challenge to `key` (loaded as `object`), started on first use.
    pub(crate) fn encrypting_session(&mut self, key: KeyHandle, object: ObjectHandle) -> Result<AuthSession> {
        if self.session.is_none() {
            self.session = Some(self.start_salted_session()?);
        }
        let salted_by = self.session.as_ref().map(|s| s.salted_by.clone()).unwrap_or_default();
        self.check_storage_key(key, object, &salted_by)?;
        Ok(self.session.as_ref().expect("started above").handle)
    }

    /// The metadata record of `key`, if it describes this very key (same TPM name).
    pub(crate) fn record_of(&mut self, key: KeyHandle, object: ObjectHandle) -> Option<KeyRecord> {
        let record = self.metadata.get(key)?;
        (record.key_name.is_some() && record.key_name == self.name_of(object).ok()).then_some(record)
    }

    /// Refuses a session salted by another storage key than the one pinned for `key`.
    pub(crate) fn check_storage_key(&mut self, key: KeyHandle, object: ObjectHandle, salted_by: &str) -> Result<()> {
        match self.record_of(key, object).and_then(|r| r.storage_key_name) {
            Some(pinned) if pinned != salted_by => Err(Error::StorageKeyChanged { handle: key }),
            _ => Ok(()),
        }
    }

    /// Ends the cached session (after an error: the TPM may have restarted and lost it).
    pub(crate) fn end_session(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = self.ctx.flush_context(object_of(session.handle));
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
        let (attributes, mask) =
            SessionAttributesBuilder::new().with_decrypt(true).with_encrypt(true).with_continue_session(true).build();
        if let Err(e) =
            self.run("setting the session attributes", |ctx| ctx.tr_sess_set_attributes(handle, attributes, mask))
        {
            let _ = self.ctx.flush_context(object_of(handle));
            return Err(e);
        }
        Ok(Session { handle, salted_by: salted_by? })
    }

    /// The TPM name (hex) of a loaded object; ESYS keeps it, no TPM command is sent.
    pub(crate) fn name_of(&mut self, object: ObjectHandle) -> Result<String> {
        self.run("reading an object's name", |ctx| ctx.tr_get_name(object)).map(|name| hex::encode(name.value()))
    }
}

fn object_of(session: AuthSession) -> ObjectHandle {
    ObjectHandle::from(SessionHandle::from(session))
}
