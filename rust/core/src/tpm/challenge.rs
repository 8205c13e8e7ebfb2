//! Challenges: KeePassXC's challenge → TPM2_HMAC (the `impl Tpm` of [`crate::challenge`]).

use crate::address::{PersistentHandle, SRK_HANDLE};
use crate::challenge::{ChallengeRule, SlotMode, CHALLENGE_BLOCK};
use crate::direct::{Fallback, SaltKey};
use crate::error::{Error, Result};
use crate::key::{describe, KeyInfo, Object};
use crate::rc::{self, codes};
use crate::secret::Pin;
use crate::tpm::pinned::{recorded_public, PinnedKey};
use crate::tpm::session::SessionUse;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::ObjectHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::Public;
use tss_esapi::structures::{Auth, MaxBuffer};
use tss_esapi::Context;
use zeroize::Zeroizing;

use super::Tpm;

/// What the direct path needs to challenge a key, from its record.
struct DirectPlan {
    key_name: Vec<u8>,
    salt_key: SaltKey,
    /// Authorised through a policy session with the empty policy.
    policy: bool,
    /// See [`KeyInfo::authorisation_may_count`].
    authorisation_may_count: bool,
    digest_len: usize,
    mode: SlotMode,
}

impl Tpm {
    /// The response of the key at `handle` to KeePassXC's `challenge` (0 to 64 bytes): the same
    /// bytes a YubiKey slot in variable-length HMAC mode holding the same secret returns.
    /// The first challenge of a connection reads the key's and the storage key's public areas
    /// and checks them against the key's record; every challenge then starts a salted session
    /// and sends the HMAC (one command when the session is kept, see [`TpmOptions::session_reuse`](crate::TpmOptions::session_reuse)).
    pub fn challenge(&mut self, handle: PersistentHandle, challenge: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.challenge_with_pin(handle, challenge, None)
    }

    /// [`Tpm::challenge`] for a key that may have a PIN. Without a PIN for a key that needs
    /// one, nothing is sent to the TPM (a wrong guess would count toward its lockout); a PIN
    /// given for a key without one is not used.
    pub fn challenge_with_pin(
        &mut self,
        handle: PersistentHandle,
        challenge: &[u8],
        pin: Option<&Pin>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.challenge_by_rule(handle, challenge, pin, ChallengeRule::KeePassXC)
    }

    /// [`Tpm::challenge_with_pin`] for a challenge padded by another program than KeePassXC,
    /// to give what a YubiKey slot with the same secret gives that program.
    pub fn challenge_by_rule(
        &mut self,
        handle: PersistentHandle,
        challenge: &[u8],
        pin: Option<&Pin>,
        rule: ChallengeRule,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.challenge_once(handle, challenge, pin, rule, true)
    }

    /// The response of the key at `handle` to a slot's whole 64-byte challenge block, as a card
    /// receives it (padded by the client, KeePassXC or yubikit alike): what a YubiKey slot in the
    /// key's own mode (its record's) hashes of it. The PC/SC driver's entry point.
    pub fn challenge_block(
        &mut self,
        handle: PersistentHandle,
        block: &[u8; CHALLENGE_BLOCK],
        pin: Option<&Pin>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        // A full block has nothing left to pad: every rule gives the block itself.
        self.challenge_by_rule(handle, block, pin, ChallengeRule::KeePassXC)
    }

    /// [`Tpm::challenge_by_rule`]; `may_retry`: once more when the key turns out to have been
    /// replaced since this connection checked it.
    fn challenge_once(
        &mut self,
        handle: PersistentHandle,
        challenge: &[u8],
        pin: Option<&Pin>,
        rule: ChallengeRule,
        may_retry: bool,
    ) -> Result<Zeroizing<Vec<u8>>> {
        // The challenge's length is checked before anything is sent.
        rule.message(challenge)?;
        if let Some(response) = self.direct_challenge(handle, challenge, rule) {
            return Ok(response);
        }
        let (object, key) = self.key_to_authorise(handle)?;
        let message = MaxBuffer::try_from(rule.message_for(challenge, key.record.yubikey_mode)?)
            .map_err(|e| Error::Wrapper { operation: "preparing the challenge", text: e.to_string() })?;
        // The key's own attributes decide, never a file: a key without noDA counts failures.
        let pin = match (key.info.needs_pin(), pin) {
            (false, _) => None,
            (true, None) => return Err(Error::PinRequired { handle }),
            // A password session would send the authValue in clear.
            (true, Some(_)) if !self.bus_encryption => return Err(Error::PinNeedsEncryption { handle }),
            (true, Some(pin)) => Some(pin),
        };
        if let Some(pin) = pin {
            let auth = Auth::try_from(pin.auth_value().to_vec())
                .map_err(|e| Error::Wrapper { operation: "preparing the PIN", text: e.to_string() })?;
            self.run("setting the PIN", |ctx| ctx.tr_set_auth(object, auth.clone()))?;
        }
        let kind = key.info.empty_policy;
        let reused = self.sessions[usize::from(kind)].is_some() && !key.info.policy_bound;
        let mut answer = self.hmac(object, &message, &key);
        let stale_session = matches!(&answer, Err((_, Error::Tpm { .. } | Error::Wrapper { .. })));
        if reused && stale_session {
            // The kept session may be gone (the TPM restarted): try once more with a new one.
            self.end_session(kind);
            answer = self.hmac(object, &message, &key);
        }
        if pin.is_some() {
            // ESYS would keep the authValue with the key's handle for as long as the process lives.
            if let Some(ctx) = self.opened() {
                let _ = ctx.tr_set_auth(object, Auth::default());
            }
        }
        match answer {
            Ok(response) => Ok(response),
            Err((code, error)) => {
                self.end_session(kind);
                match self.recheck_after_refusal(&key, &error) {
                    // Another key was put at the handle since this connection checked it (its
                    // policy session failed, which costs no dictionary-attack try), and its
                    // record says what it needs now.
                    Some(Ok(true)) if may_retry => self.challenge_once(handle, challenge, pin, rule, false),
                    Some(Ok(_)) => Err(Error::SessionRejected { rc: code }),
                    Some(Err(e)) => Err(e),
                    None => Err(self.explain_failure(&key, code, error)),
                }
            }
        }
    }

    /// The key at `handle` checked against its record, ready for an authorisation. What this
    /// connection read about the handle before may be stale: another program may have put another
    /// key there since. So a key whose authorisation the TPM could count
    /// ([`KeyInfo::authorisation_may_count`]), or one that no longer matches its record, is read
    /// from the TPM again (one ReadPublic) unless this call just read it; an authorisation meant
    /// for the old key would count against the new one. No authorisation goes out before this.
    fn key_to_authorise(&mut self, handle: PersistentHandle) -> Result<(ObjectHandle, PinnedKey)> {
        if self.keys.object(handle).is_some() {
            match self.pinned_at(handle) {
                Ok((object, key)) if !key.info.authorisation_may_count() => return Ok((object, key)),
                _ => self.forget(handle),
            }
        }
        self.pinned_at(handle)
    }

    /// The key at `handle`, resolved and checked against its record.
    fn pinned_at(&mut self, handle: PersistentHandle) -> Result<(ObjectHandle, PinnedKey)> {
        let object = self.resolve(handle)?;
        match self.pinned_key(handle, object) {
            Ok(key) => Ok((object, key)),
            Err(e) => {
                // A cached handle may be stale (the key was deleted by another program).
                self.forget(handle);
                Err(e)
            }
        }
    }

    /// After a refused challenge of a key with the empty policy (`None` for other keys and
    /// failures): the key at its handle read again and checked against its record. `Ok(true)`:
    /// another key sits there now, one its record describes (the challenge is worth making again,
    /// with what that key needs); `Ok(false)`: the same key, so the session's answers were
    /// altered; `Err`: why the key there is not served (another key than the record's, none, ...).
    fn recheck_after_refusal(&mut self, key: &PinnedKey, error: &Error) -> Option<Result<bool>> {
        let refused = matches!(error, Error::PolicyFailed { .. } | Error::AuthFailed { .. });
        if !(key.info.empty_policy && refused) {
            return None;
        }
        let handle = key.info.handle;
        self.forget(handle);
        Some(self.pinned_at(handle).map(|(_, now)| now.record.key_name != key.record.key_name))
    }

    /// The response through the direct path, when the key and the TCTI allow it: the key has
    /// no PIN and no PCR policy, and its record pins a persistent P-256 SRK. `None` sends the
    /// challenge down the ESYS path, which checks everything again.
    fn direct_challenge(
        &mut self,
        handle: PersistentHandle,
        challenge: &[u8],
        rule: ChallengeRule,
    ) -> Option<Zeroizing<Vec<u8>>> {
        if !(self.bus_encryption && self.direct_path) {
            return None;
        }
        let plan = self.direct_plan(handle)?;
        let message = rule.message_for(challenge, plan.mode).ok()?;
        let message = &message[..];
        if plan.authorisation_may_count {
            // Read the name at the handle now, not from earlier (see `key_to_authorise`).
            self.forget(handle);
        }
        // The record may be stale (its key evicted, another one made at the handle, maybe with a
        // PIN): an authorisation goes out only to the key whose name this connection read.
        if self.tpm_name(handle)? != plan.key_name {
            self.forget(handle);
            return None;
        }
        let (key, name, salt_key, policy, digest_len) =
            (handle.value(), &plan.key_name, &plan.salt_key, plan.policy, plan.digest_len);
        match self.on_direct(|direct| direct.hmac(key, name, salt_key, policy, message, digest_len))? {
            Ok(response) => Some(response),
            Err(Fallback::Io) => None,
            // A key with the empty policy whose policy session failed: the key at the handle is
            // not the one this connection read (no dictionary-attack try is counted in a policy
            // session). The ESYS path reads it again and says why.
            Err(Fallback::Refused(code)) if plan.policy && rc::tpm_code(code) == Some(codes::POLICY_FAIL) => {
                self.forget(handle);
                None
            }
            // The key at the handle may not be the recorded one, or the answers were altered:
            // from now on this connection reads and checks everything first (the ESYS path).
            Err(Fallback::Refused(code))
                if matches!(rc::tpm_code(code), Some(codes::AUTH_FAIL | codes::BAD_AUTH | codes::HANDLE)) =>
            {
                self.direct_path = false;
                self.direct = None;
                self.forget(handle);
                None
            }
            // Anything else (a busy TPM, an altered answer): this challenge takes the ESYS path.
            Err(Fallback::Refused(_)) => None,
        }
    }

    /// Behind a resource manager (which flushes a connection's sessions when it closes, so
    /// nothing started ahead can be left loaded), after listing `keys`: the salted session their
    /// challenges will use is started now and kept, and each key is checked against its record
    /// with the name the listing read (no command), so that the challenge after the user's click
    /// is the HMAC alone (for a key with the empty policy; a key whose authorisation could count
    /// has its name read again first). Best effort, and never an authorisation: a key that
    /// cannot be prepared (no complete record, a record naming another key, a PCR policy) is
    /// checked when challenged.
    pub(super) fn prepare_challenges(&mut self, keys: &[KeyInfo]) {
        if !(self.tcti.flushes_on_close() && self.bus_encryption) {
            return;
        }
        // One session of each kind a key may need (an HMAC or a policy session), on either path.
        let (mut direct_ready, mut esys_ready) = ([false; 2], [false; 2]);
        for key in keys {
            let handle = key.handle;
            let plan = if self.direct_path && self.direct.is_some() { self.direct_plan(handle) } else { None };
            if let Some(plan) = plan {
                // The direct path will serve it, if the TPM's name is the record's.
                let kind = usize::from(plan.policy);
                if !direct_ready[kind] && self.tpm_name(handle).as_deref() == Some(&plan.key_name[..]) {
                    let prepared = self.on_direct(|direct| direct.prepare(&plan.salt_key, plan.policy));
                    direct_ready[kind] = matches!(prepared, Some(Ok(())));
                }
                continue;
            }
            // The ESYS path: only keys ESYS already resolved, with a record that needs nothing
            // more from the TPM (no ReadPublic, no storage key to pin now). A key file is loaded
            // now (the resource manager keeps it), so that its click needs no TPM2_Load.
            let object = match self.keys.object(handle) {
                Some(object) => object,
                None if handle.is_file_key() => match self.resolve(handle) {
                    Ok(object) => object,
                    Err(_) => continue,
                },
                None => continue,
            };
            let complete = matches!(self.record(handle), Ok(Some(record))
                if record.key_public.is_some() && record.storage_key_name.is_some());
            if key.policy_bound || !complete {
                continue;
            }
            let Ok(pinned) = self.pinned_key(handle, object) else { continue };
            let kind = usize::from(pinned.info.empty_policy);
            if !esys_ready[kind] && self.session_reuse && self.encrypting_session(&pinned).is_ok() {
                esys_ready[kind] = true;
            }
        }
    }

    /// What the direct path needs to challenge the key at `handle`, from the key's record alone
    /// (no TPM command), each part checked against its pinned name; `None` when the direct path
    /// may not serve it. The caller checks the key's name against the TPM's.
    fn direct_plan(&mut self, handle: PersistentHandle) -> Option<DirectPlan> {
        // A key file is loaded through ESYS; its transient handle is ESYS's.
        if handle.is_file_key() {
            return None;
        }
        let record = match self.keys.checked(handle) {
            Some(key) => key.record.clone(),
            None => self.record(handle).ok()??,
        };
        let key_name = record.key_name.as_deref()?;
        let public = recorded_public(record.key_public.as_deref()?, key_name)?;
        let Object::Hmac(info) = describe(handle, &public) else { return None };
        if info.needs_pin() || info.policy_bound {
            return None;
        }
        let storage_public =
            recorded_public(record.storage_key_public.as_deref()?, record.storage_key_name.as_deref()?)?;
        let Public::Ecc { unique, .. } = storage_public else { return None };
        let salt_key = SaltKey { handle: SRK_HANDLE, x: unique.x().value().to_vec(), y: unique.y().value().to_vec() };
        Some(DirectPlan {
            key_name: hex::decode(key_name).ok()?,
            salt_key,
            policy: info.empty_policy,
            authorisation_may_count: info.authorisation_may_count(),
            digest_len: info.algorithm.digest_len(),
            mode: record.yubikey_mode,
        })
    }

    /// The TPM's name of the object at `handle`, as this connection knows it: from ESYS when it
    /// resolved the handle (no command), else read by the direct path (one ReadPublic per
    /// handle and connection). `None` when it cannot be read: the ESYS path then says why.
    pub(super) fn tpm_name(&mut self, handle: PersistentHandle) -> Option<Vec<u8>> {
        if let Some(object) = self.keys.object(handle) {
            return hex::decode(self.esys_name(object).ok()?).ok();
        }
        if let Some(name) = self.keys.name(handle) {
            return Some(name.to_vec());
        }
        let (_, name) = self.on_direct(|direct| direct.public_at(handle.value()))?.ok()?;
        self.keys.named(handle, name.clone());
        Some(name)
    }

    /// One TPM2_HMAC: in the encrypted session (a policy session for a key with the empty
    /// policy), or in a policy session for a key bound to PCRs; when bus encryption is off, in
    /// an unsalted policy session or a password session. HashingAlgorithm::Null uses the
    /// key's own scheme (SHA-1 or SHA-256).
    fn hmac(
        &mut self,
        object: ObjectHandle,
        message: &MaxBuffer,
        key: &PinnedKey,
    ) -> std::result::Result<Zeroizing<Vec<u8>>, (u32, Error)> {
        let pcr_policy = key.info.policy_bound;
        // Without bus encryption a key with the empty policy takes an unsalted policy session.
        let policy = pcr_policy || (key.info.empty_policy && !self.bus_encryption);
        let session = if pcr_policy {
            if key.record.pcrs.is_empty() {
                return Err((0, Error::PolicyUnknown { rc: 0 }));
            }
            // The PCR policy is satisfied anew for each command (its PolicyPCR reads the PCRs then):
            // a new session each time, ended by the HMAC.
            self.policy_session(key).map_err(|e| (0, e))?
        } else if self.bus_encryption {
            self.encrypting_session(key).map_err(|e| (0, e))?
        } else if policy {
            self.salted_session(None, SessionType::Policy, SessionUse::Plain).map_err(|e| (0, e))?
        } else {
            AuthSession::Password
        };
        let hmac = |ctx: &mut Context| ctx.hmac(object, message.clone(), HashingAlgorithm::Null);
        let result = if policy {
            // Not continued: the HMAC ends it (or, when it fails, it is flushed).
            self.call_in_one_shot_session(session, hmac)
        } else {
            // The encrypting session: kept, or ended by the HMAC (a failure ends it in the caller).
            let result = self.call_in_session(session, hmac);
            if result.is_ok() && self.bus_encryption {
                self.session_used(key.info.empty_policy);
            }
            result
        };
        result
            .map(|digest| Zeroizing::new(digest.value().to_vec()))
            .map_err(|(code, e)| (code, rc::classify("computing the HMAC", e, self.tcti.as_str())))
    }

    /// Turns an HMAC failure into the error a person can act on: the key is gone, or the
    /// handle holds something that is not an HMAC key.
    fn explain_failure(&mut self, key: &PinnedKey, code: u32, error: Error) -> Error {
        let handle = key.info.handle;
        match error {
            Error::NoTpm { .. }
            | Error::StorageKeyChanged { .. }
            | Error::PolicyFailed { .. }
            | Error::PolicyUnknown { .. }
            | Error::Metadata { .. } => return error,
            // A key without a PIN has an empty authValue: a bad authorisation means the session's
            // HMAC did not match, i.e. the TPM's answers (or ours) were changed on the way.
            // (Or the key at the handle is no longer the one recorded: look again next time.)
            Error::AuthFailed { rc, .. } if !key.info.needs_pin() => {
                self.forget(handle);
                return Error::SessionRejected { rc };
            }
            Error::Tpm { rc, .. } if rc::is_session_error(rc) => {
                self.forget(handle);
                return Error::SessionRejected { rc };
            }
            // Say how many tries are left, or how long the lockout lasts.
            Error::AuthFailed { rc, .. } => {
                return Error::AuthFailed { rc, tries_left: self.da_status().ok().map(|s| s.tries_left()) }
            }
            Error::Lockout { rc, .. } => {
                return Error::Lockout { rc, interval_seconds: self.da_status().ok().map(|s| s.interval_seconds) }
            }
            _ => {}
        }
        // The cached ESYS handle may be stale (key deleted by another program): look again.
        self.forget(handle);
        if rc::tpm_code(code) == Some(codes::HANDLE) {
            return Error::EmptyHandle { handle };
        }
        if matches!(error, Error::Tpm { .. }) {
            match self.object_at(handle) {
                Ok(Object::Other { what, .. }) => return Error::NotHmacKey { handle, what },
                Err(e @ Error::EmptyHandle { .. }) => return e,
                _ => {}
            }
        }
        error
    }
}
