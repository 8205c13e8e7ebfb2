//! The encrypted session challenges run in. It is salted with the storage key (the SRK at
//! 0x81000001, else the ECC primary from the SRK template) and has the TPM encrypt its response
//! with AES-128-CFB, so the HMAC crosses the bus between TPM and CPU encrypted. (The challenge
//! is not encrypted: it is the KDF seed, stored in clear in the database header.) The storage
//! key's name is compared with the one pinned for the key (`pinned`) before the session is
//! started: a swapped TPM or an interposer answering ReadPublic is refused. Provisioning uses a
//! session of the same kind that encrypts the command instead, so the secret and the PIN's
//! authValue in TPM2_Create never cross the bus in clear.
//!
//! By default the HMAC ends its session (continueSession clear), so nothing stays loaded in the
//! TPM even when the process ends without cleaning up, as KeePassXC's does: a TPM without a
//! resource manager has only three session slots. Long-lived callers that close the connection
//! properly can keep the session (`TpmOptions::session_reuse`), making a warm challenge one command.
//!
//! Starting, keeping and ending encrypted sessions: its types first, then the `impl Tpm` that uses them.

use crate::error::{Error, Result};
use crate::tpm::pinned::PinnedKey;
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle as EsysKeyHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::SymmetricDefinition;
use tss_esapi::Context;

use super::Tpm;

/// The session for the next challenge.
pub(crate) struct EsysSession {
    pub(crate) handle: AuthSession,
    /// Name (hex) of the storage key that salted it.
    pub(crate) salted_by: String,
}

/// What a session is for, which decides its attributes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionUse {
    /// A challenge: the TPM encrypts its response; kept for the next one only when asked.
    Challenge { keep: bool },
    /// A challenge without bus encryption (a policy session, unsalted).
    Plain,
    /// Create: the command's first parameter (the secret and authValue) is encrypted.
    Provisioning,
}

pub(crate) fn object_of(session: AuthSession) -> ObjectHandle {
    ObjectHandle::from(SessionHandle::from(session))
}

impl Tpm {
    /// The encrypting session for a challenge to `key`, started when there is none: a policy
    /// session for a key with the empty policy (its digest starts, and after each command is
    /// reset to, that policy), else an HMAC session. One of each kind is kept (so that a dialog
    /// listing keys of both kinds has each one's click ready), used only for keys pinned to the
    /// storage key that salted it.
    pub(crate) fn encrypting_session(&mut self, key: &PinnedKey) -> Result<AuthSession> {
        let policy = key.info.empty_policy;
        if let Some(session) = &self.sessions[usize::from(policy)] {
            if session.salted_by == key.storage_key_name() {
                return Ok(session.handle);
            }
            self.end_session(policy);
        }
        let keep = self.session_reuse;
        let session_type = if policy { SessionType::Policy } else { SessionType::Hmac };
        // A session stays salted after its salt key is flushed.
        let handle = self.with_salt_key(key, |tpm, salt| {
            tpm.salted_session(Some(salt.handle), session_type, SessionUse::Challenge { keep })
        })?;
        self.sessions[usize::from(policy)] = Some(EsysSession { handle, salted_by: key.storage_key_name().to_owned() });
        Ok(handle)
    }

    /// Starts a session, salted with `salt` (the salt is encrypted to that key, so only the TPM
    /// holding it knows the session key) and with AES-128-CFB parameter encryption as `purpose`
    /// needs it; unsalted and unencrypted without `salt`.
    pub(crate) fn salted_session(
        &mut self,
        salt: Option<EsysKeyHandle>,
        session_type: SessionType,
        purpose: SessionUse,
    ) -> Result<AuthSession> {
        let symmetric = if salt.is_some() { SymmetricDefinition::AES_128_CFB } else { SymmetricDefinition::Null };
        let handle = self
            .run("starting the encrypted session", |ctx| {
                ctx.start_auth_session(salt, None, None, session_type, symmetric, HashingAlgorithm::Sha256)
            })?
            .ok_or_else(|| Error::Wrapper {
                operation: "starting the encrypted session",
                text: "the TPM returned no session".to_owned(),
            })?;
        let (encrypt, decrypt, keep) = match purpose {
            SessionUse::Challenge { keep } => (true, false, keep),
            SessionUse::Plain => (false, false, false),
            SessionUse::Provisioning => (false, true, false),
        };
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_decrypt(decrypt && salt.is_some())
            .with_encrypt(encrypt && salt.is_some())
            .with_continue_session(keep)
            .build();
        if let Err(e) =
            self.run("setting the session attributes", |ctx| ctx.tr_sess_set_attributes(handle, attributes, mask))
        {
            self.flush_session(handle);
            return Err(e);
        }
        Ok(handle)
    }

    /// Runs one command (`f`, with [`Tpm::call`]'s retries) authorised by `session`, a session that
    /// the command ends (it is not continued): forgotten when the command succeeded, flushed when
    /// it failed, so that it never stays loaded whatever happens.
    pub(crate) fn call_in_one_shot_session<T>(
        &mut self,
        session: AuthSession,
        f: impl FnMut(&mut Context) -> tss_esapi::Result<T>,
    ) -> std::result::Result<T, (u32, tss_esapi::Error)> {
        let result = self.call_in_session(session, f);
        match &result {
            Ok(_) => self.forget_ended_session(session),
            Err(_) => self.flush_session(session),
        }
        result
    }

    /// Runs one command (`f`, with [`Tpm::call`]'s retries) authorised by `session`.
    pub(crate) fn call_in_session<T>(
        &mut self,
        session: AuthSession,
        f: impl FnMut(&mut Context) -> tss_esapi::Result<T>,
    ) -> std::result::Result<T, (u32, tss_esapi::Error)> {
        self.with_session(session, |tpm| tpm.call(f))
    }

    /// Runs `f` with `session` as the open ESYS context's session, then puts back the sessions it
    /// found there (as tss-esapi's `execute_with_sessions` does), so that scoped helpers nest.
    pub(crate) fn with_session<T>(&mut self, session: AuthSession, f: impl FnOnce(&mut Tpm) -> T) -> T {
        let found = self.opened().map(|ctx| {
            let found = ctx.sessions();
            ctx.set_sessions((Some(session), None, None));
            found
        });
        let result = f(self);
        if let (Some(found), Some(ctx)) = (found, self.opened()) {
            ctx.set_sessions(found);
        }
        result
    }

    /// After a challenge in the encrypting session of kind `policy`: it ended with the challenge
    /// unless it is kept.
    pub(crate) fn session_used(&mut self, policy: bool) {
        if !self.session_reuse {
            if let Some(session) = self.sessions[usize::from(policy)].take() {
                self.forget_ended_session(session.handle);
            }
        }
    }

    /// Flushes a session that is still loaded (after a failure, or one not meant to continue).
    pub(crate) fn flush_session(&mut self, session: AuthSession) {
        self.flush(object_of(session));
    }

    /// Drops ESYS's record of a session the TPM has ended, so nothing tries to flush it later.
    pub(crate) fn forget_ended_session(&mut self, session: AuthSession) {
        self.close(object_of(session));
    }

    /// Ends the kept encrypting session of kind `policy` (after an error: the TPM may have
    /// restarted and lost it).
    pub(crate) fn end_session(&mut self, policy: bool) {
        if let Some(session) = self.sessions[usize::from(policy)].take() {
            self.flush_session(session.handle);
        }
    }

    /// The TPM name (hex) of a loaded object; ESYS keeps it, no TPM command is sent.
    pub(crate) fn esys_name(&mut self, object: ObjectHandle) -> Result<String> {
        self.run("reading an object's name", |ctx| ctx.tr_get_name(object)).map(|name| hex::encode(name.value()))
    }
}
