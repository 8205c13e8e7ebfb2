//! The direct path: a challenge to a key without a PIN or PCR policy in two TPM commands
//! (StartAuthSession, HMAC; a ReadPublic first on a connection's first challenge of the key), or one
//! with a kept session, with the salted, encrypting session computed here in Rust as go-tpm does in
//! Go, instead of by tpm2-tss (which costs ~4.5 ms of client CPU per challenge in fresh OpenSSL
//! contexts, and two ReadPublic commands per process).
//!
//! Nothing is taken from the TPM on trust: the storage key's public point comes from the key's
//! record, where its name was pinned (the salt is encrypted to that point, so only that TPM can
//! know the session key), and the key's name comes from the record too (the TPM refuses the
//! command's HMAC unless it is the key's real name). A key made with the empty policy is
//! authorised through a policy session, whose failures the TPM never counts as dictionary-attack
//! events: the name this connection read earlier is enough. A key of the older form (its empty
//! authValue in an HMAC session) has the name at its handle read from the TPM before every HMAC
//! ([`Direct::public_at`]) and it must be the record's, so a key put at
//! the handle since (one with a PIN) is never sent an authorisation it would count. The TPM's
//! response HMAC is verified in constant time before its answer is decrypted. Any failure here
//! makes the caller fall back to the ESYS path, which reads and checks everything again.

mod crypto;
pub(crate) mod provision;
pub(crate) mod transport;
pub(crate) mod wire;

use hmac::Mac;
use zeroize::Zeroizing;

use crypto::DIGEST;
use transport::Transport;
use wire::{CONTINUE_SESSION, ENCRYPT};

/// What the direct path needs about the storage key: its handle and its public point.
pub(crate) struct SaltKey {
    pub(crate) handle: u32,
    pub(crate) x: Vec<u8>,
    pub(crate) y: Vec<u8>,
}

/// Why a direct challenge did not give a response. (The ESYS path the caller falls back to
/// says why in words.)
#[derive(Debug)]
pub(crate) enum Fallback {
    /// The transport failed (no connection, a timeout).
    Io,
    /// The TPM refused the command with this response code, or (0) its answer did not parse or
    /// was not the session's.
    Refused(u32),
    /// Windows (TBS) blocked this command code for this user: the TPM never saw it.
    #[cfg(windows)]
    Blocked(u32),
}

impl From<std::io::Error> for Fallback {
    fn from(error: std::io::Error) -> Fallback {
        #[cfg(windows)]
        if let Some(transport::Blocked(code)) = error.get_ref().and_then(|e| e.downcast_ref::<transport::Blocked>()) {
            return Fallback::Blocked(*code);
        }
        let _ = error;
        Fallback::Io
    }
}

/// A salted, encrypting session this path computed, kept for the next challenge.
struct DirectSession {
    handle: u32,
    key: Zeroizing<Vec<u8>>,
    nonce_tpm: Vec<u8>,
    /// The storage key that salted it (its x coordinate), to use it only for keys pinned to it.
    salted_by: Vec<u8>,
}

/// A connection of the direct path and the session it keeps, if any.
pub(crate) struct Direct {
    transport: Transport,
    /// The kept sessions, one of each kind: an HMAC session (`[0]`, keys of the authValue form) and a
    /// policy session (`[1]`, keys with the empty policy), so that a dialog listing keys of both
    /// kinds has each one's click ready.
    sessions: [Option<DirectSession>; 2],
    /// Keep the session from one challenge to the next.
    keep: bool,
}

impl Direct {
    /// The direct path for `tcti`, when it speaks that TCTI. A session is kept where a resource
    /// manager flushes it when the connection closes, or when the caller promises to close the
    /// connection itself (`keep`).
    #[cfg(unix)]
    pub(crate) fn open(tcti: &crate::tcti::Tcti, keep: bool) -> Option<Direct> {
        Some(Direct::over(Transport::for_tcti(tcti)?, keep))
    }

    /// The direct path over `transport` (see [`Direct::open`] for `keep`).
    pub(crate) fn over(transport: Transport, keep: bool) -> Direct {
        let keep = keep || transport.flushes_on_close();
        Direct { transport, sessions: [None, None], keep }
    }

    /// Whether the TPM can be reached on this connection (no command is sent).
    pub(crate) fn check_reachable(&self) -> std::io::Result<()> {
        self.transport.check_reachable()
    }

    /// The public area (TPMT_PUBLIC) and TPM name of the object at `handle`: one ReadPublic,
    /// the name checked against the hash of the public area (SHA-256 names only), as ESYS checks
    /// it. The caller keeps the name (the connection's `KnownKeys`).
    pub(crate) fn public_at(&mut self, handle: u32) -> Result<(Vec<u8>, Vec<u8>), Fallback> {
        let response = self.transport.send(&wire::read_public(handle)).map_err(Fallback::from)?;
        let answer = wire::public_answer(&response).map_err(|_| Fallback::Refused(0))?.map_err(Fallback::Refused)?;
        let computed = crate::key::public::sha256_name(answer.public).ok_or(Fallback::Refused(0))?;
        if answer.name != computed {
            return Err(Fallback::Refused(0));
        }
        Ok((answer.public.to_vec(), computed))
    }

    /// One page of the handles in use from `first` on (TPM_CAP_HANDLES), and whether there are more.
    pub(crate) fn handles(&mut self, first: u32, count: u32) -> Result<(bool, Vec<u32>), Fallback> {
        let command = wire::get_capability(wire::CAP_HANDLES, first, count);
        let response = self.transport.send(&command).map_err(Fallback::from)?;
        wire::handles_answer(&response).map_err(|_| Fallback::Refused(0))?.map_err(Fallback::Refused)
    }

    /// Starts the session the next challenge of a key salted by `salt_key` will use, when the
    /// session is kept and a resource manager flushes it with the connection (so a session
    /// started ahead is never left loaded): the challenge itself is then the HMAC alone.
    pub(crate) fn prepare(&mut self, salt_key: &SaltKey, policy: bool) -> Result<(), Fallback> {
        if !(self.keep && self.transport.flushes_on_close()) {
            return Ok(());
        }
        if self.sessions[usize::from(policy)].as_ref().is_some_and(|s| s.serves(salt_key)) {
            return Ok(());
        }
        self.end_session(policy);
        self.sessions[usize::from(policy)] = Some(self.start_session(salt_key, policy)?);
        Ok(())
    }

    /// The response of the key at `key` (TPM name `key_name`, no authValue) to `message` (the
    /// bytes to hash, already padded and trimmed as a YubiKey slot would): `digest_len` bytes.
    /// With `policy` the authorisation is a policy session with the empty policy (a key whose
    /// authPolicy is that policy), else an HMAC session.
    pub(crate) fn hmac(
        &mut self,
        key: u32,
        key_name: &[u8],
        salt_key: &SaltKey,
        policy: bool,
        message: &[u8],
        digest_len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, Fallback> {
        if self.sessions[usize::from(policy)].as_ref().is_some_and(|s| !s.serves(salt_key)) {
            self.end_session(policy);
        }
        let mut session = match self.sessions[usize::from(policy)].take() {
            Some(session) => session,
            None => self.start_session(salt_key, policy)?,
        };
        let result = self.hmac_in(&mut session, key, key_name, message, digest_len);
        match &result {
            // The TPM ended the session with the command unless asked to keep it.
            Ok(_) if self.keep => self.sessions[usize::from(policy)] = Some(session),
            Ok(_) => {}
            // Flush the session only while it is known to be still ours: a resource manager keeps
            // handles per connection; a kept session outlives any command, and a failed command
            // (the TPM's error code) leaves its session loaded. After an answer rejected here, to
            // a command that did not keep its session, the TPM may have ended it and given the
            // handle to another client since: it is not flushed.
            Err(Fallback::Refused(code)) => {
                if self.transport.flushes_on_close() || self.keep || *code != 0 {
                    let _ = self.transport.send(&wire::flush_context(session.handle));
                }
            }
            Err(_) => {}
        }
        result
    }

    fn start_session(&mut self, salt_key: &SaltKey, policy: bool) -> Result<DirectSession, Fallback> {
        let salt = crypto::ecdh_salt(&salt_key.x, &salt_key.y).ok_or(Fallback::Refused(0))?;
        let nonce_caller = crypto::nonce(DIGEST).ok_or(Fallback::Refused(0))?;
        let command =
            wire::start_auth_session(salt_key.handle, &nonce_caller, &salt.ephemeral_x, &salt.ephemeral_y, policy);
        let response = self.transport.send(&command).map_err(Fallback::from)?;
        let started = wire::session_started(&response, policy).map_err(|_| {
            // The TPM may have started a session all the same: do not leave it loaded.
            if let Some(handle) = wire::session_handle_in(&response) {
                let _ = self.transport.send(&wire::flush_context(handle));
            }
            Fallback::Refused(0)
        })?;
        let (handle, nonce_tpm) = started.map_err(Fallback::Refused)?;
        let key = crypto::session_key(&salt.value, &nonce_tpm, &nonce_caller);
        Ok(DirectSession { handle, key, nonce_tpm, salted_by: salt_key.x.clone() })
    }

    fn hmac_in(
        &mut self,
        session: &mut DirectSession,
        key: u32,
        key_name: &[u8],
        message: &[u8],
        digest_len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, Fallback> {
        let attributes = ENCRYPT | if self.keep { CONTINUE_SESSION } else { 0 };
        let nonce_caller = crypto::nonce(DIGEST).ok_or(Fallback::Refused(0))?;
        let parameters = wire::hmac_parameters(message);
        let cp_hash = crypto::parameter_hash(&[&wire::CC_HMAC.to_be_bytes(), key_name, &parameters]);
        let auth = crypto::session_hmac(&session.key, &[], &cp_hash, &nonce_caller, &session.nonce_tpm, attributes)
            .finalize()
            .into_bytes();
        let command =
            wire::authorised(wire::CC_HMAC, key, session.handle, &nonce_caller, attributes, &auth, &parameters);
        let response = self.transport.send(&command).map_err(Fallback::from)?;
        let answer = wire::hmac_answer(&response).map_err(|_| Fallback::Refused(0))?.map_err(Fallback::Refused)?;
        // The answer is the TPM's only if its HMAC is the session's: checked before anything else.
        let rp_hash = crypto::parameter_hash(&[&0u32.to_be_bytes(), &wire::CC_HMAC.to_be_bytes(), answer.parameters]);
        crypto::session_hmac(&session.key, &[], &rp_hash, answer.nonce_tpm, &nonce_caller, answer.attributes)
            .verify_slice(answer.hmac)
            .map_err(|_| Fallback::Refused(0))?;
        // The session as asked for (encrypted, kept or not), and a digest of the key's size.
        if answer.attributes != attributes || answer.parameters.len() != 2 + digest_len {
            return Err(Fallback::Refused(0));
        }
        session.nonce_tpm = answer.nonce_tpm.to_vec();
        let mut digest = Zeroizing::new(answer.parameters[2..].to_vec());
        crypto::decrypt_response(&session.key, &[], answer.nonce_tpm, &nonce_caller, &mut digest);
        Ok(digest)
    }

    /// Flushes the kept session of one kind (a TPM without a resource manager has only three slots).
    fn end_session(&mut self, policy: bool) {
        if let Some(session) = self.sessions[usize::from(policy)].take() {
            let _ = self.transport.send(&wire::flush_context(session.handle));
        }
    }
}

impl DirectSession {
    /// Whether a challenge of a key salted by `salt_key` may use it.
    fn serves(&self, salt_key: &SaltKey) -> bool {
        self.salted_by == salt_key.x
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        if !self.transport.flushes_on_close() {
            self.end_session(false);
            self.end_session(true);
        }
    }
}
