//! Challenges: KeePassXC's challenge → TPM2_HMAC (the `impl Tpm` of [`crate::challenge`]).

use crate::address::{PersistentHandle, SRK_HANDLE};
use crate::challenge::{ChallengeRule, SlotMode};
use crate::direct::{Direct, Failure, SaltKey};
use crate::error::{Error, Result};
use crate::key::{describe, KeyInfo, Object};
use crate::pinned::{recorded_public, PinnedKey};
use crate::rc::{self, codes};
use crate::secret::Pin;
use tss_esapi::handles::ObjectHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::Public;
use tss_esapi::structures::{Auth, MaxBuffer};
use tss_esapi::Context;
use zeroize::Zeroizing;

use super::Tpm;

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
        // The challenge's length is checked before anything is sent.
        rule.message(challenge)?;
        if let Some(response) = self.direct_challenge(handle, challenge, rule) {
            return Ok(response);
        }
        let object = self.resolve(handle)?;
        let key = match self.pinned_key(handle, object) {
            Ok(key) => key,
            Err(e) => {
                // A cached handle may be stale (the key was deleted by another program).
                self.forget(handle);
                return Err(e);
            }
        };
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
        let reused = self.session.is_some() && !key.info.policy_bound;
        let mut answer = self.hmac(object, &message, &key);
        let stale_session = matches!(&answer, Err((_, Error::Tpm { .. } | Error::Wrapper { .. })));
        if reused && stale_session {
            // The kept session may be gone (the TPM restarted): try once more with a new one.
            self.end_session();
            answer = self.hmac(object, &message, &key);
        }
        if pin.is_some() {
            // ESYS would keep the authValue with the key's handle for as long as the process lives.
            if let Some(ctx) = self.opened() {
                let _ = ctx.tr_set_auth(object, Auth::default());
            }
        }
        answer.map_err(|(code, error)| {
            self.end_session();
            self.explain_failure(&key, code, error)
        })
    }

    /// The response through the direct path, when the key and the TCTI allow it: the key has
    /// no PIN and no policy, and its record pins a persistent P-256 SRK. `None` sends the
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
        let (key_name, salt_key, digest_len, mode) = self.direct_plan(handle)?;
        let message = rule.message_for(challenge, mode).ok()?;
        let message = &message[..];
        if self.direct.is_none() {
            self.direct = Direct::open(&self.tcti, self.session_reuse);
        }
        // The record may be stale (its key evicted, another one made at the handle, maybe with a
        // PIN): an authorisation goes out only to the key whose name this connection read.
        if self.tpm_name(handle)? != key_name {
            self.forget(handle);
            return None;
        }
        match self.direct.as_mut()?.hmac(handle.value(), &key_name, &salt_key, message, digest_len) {
            Ok(response) => Some(response),
            Err(Failure::Io) => {
                self.direct = None;
                None
            }
            // The key at the handle may not be the recorded one (a record made stale by another
            // tool): from now on this connection reads and checks it first (the ESYS path), so a
            // stale record costs at most this one authorisation.
            Err(Failure::Refused(code))
                if matches!(rc::tpm_code(code), Some(codes::AUTH_FAIL | codes::BAD_AUTH | codes::HANDLE)) =>
            {
                self.direct_path = false;
                self.direct = None;
                self.forget(handle);
                None
            }
            // Anything else (a busy TPM, an altered answer): this challenge takes the ESYS path.
            Err(Failure::Refused(_)) => None,
        }
    }

    /// Behind a resource manager (which flushes a connection's sessions when it closes, so
    /// nothing started ahead can be left loaded), after listing `keys`: the salted session their
    /// challenges will use is started now and kept, and each key is checked against its record
    /// with the name the listing read (no command), so that the challenge after the user's click
    /// is the HMAC alone. Best effort, and never an authorisation: a key that cannot be prepared
    /// (no complete record, a record naming another key, a PCR policy) is checked when challenged.
    pub(super) fn prepare_challenges(&mut self, keys: &[KeyInfo]) {
        if !(self.tcti.flushes_on_close() && self.bus_encryption) {
            return;
        }
        let (mut direct_ready, mut esys_ready) = (false, false);
        for key in keys {
            let handle = key.handle;
            let plan = if self.direct_path && self.direct.is_some() { self.direct_plan(handle) } else { None };
            if let Some((key_name, salt_key, _, _)) = plan {
                // The direct path will serve it, if the TPM's name is the record's.
                if !direct_ready && self.tpm_name(handle).as_deref() == Some(&key_name[..]) {
                    match self.direct.as_mut().map(|direct| direct.prepare(&salt_key)) {
                        Some(Ok(())) => direct_ready = true,
                        Some(Err(Failure::Io)) => self.direct = None,
                        _ => {}
                    }
                }
                continue;
            }
            // The ESYS path: only keys ESYS already resolved, with a record that needs nothing
            // more from the TPM (no ReadPublic, no storage key to pin now).
            let Some(object) = self.keys.object(handle) else { continue };
            let complete = matches!(self.metadata.get(handle), Ok(Some(record))
                if record.key_public.is_some() && record.storage_key_name.is_some());
            if key.policy_bound || !complete {
                continue;
            }
            let Ok(pinned) = self.pinned_key(handle, object) else { continue };
            if !esys_ready && self.session_reuse && self.encrypting_session(&pinned).is_ok() {
                esys_ready = true;
            }
        }
    }

    /// The key's TPM name and the storage key's point, from the key's record alone (no TPM
    /// command), each checked against its pinned name; `None` when the direct path may not serve
    /// it. The caller checks the key's name against the TPM's.
    fn direct_plan(&mut self, handle: PersistentHandle) -> Option<(Vec<u8>, SaltKey, usize, SlotMode)> {
        let record = match self.keys.checked(handle) {
            Some(key) => key.record.clone(),
            None => self.metadata.get(handle).ok()??,
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
        Some((hex::decode(key_name).ok()?, salt_key, info.algorithm.digest_len(), record.yubikey_mode))
    }

    /// The TPM's name of the object at `handle`, as this connection knows it: from ESYS when it
    /// resolved the handle (no command), else read by the direct path (one ReadPublic per
    /// handle and connection). `None` when it cannot be read: the ESYS path then says why.
    pub(super) fn tpm_name(&mut self, handle: PersistentHandle) -> Option<Vec<u8>> {
        if let Some(object) = self.keys.object(handle) {
            return hex::decode(self.name_of(object).ok()?).ok();
        }
        match self.direct.as_mut()?.name_at(handle.value()) {
            Ok(name) => Some(name.to_vec()),
            Err(Failure::Io) => {
                self.direct = None;
                None
            }
            Err(Failure::Refused(_)) => None,
        }
    }

    /// One TPM2_HMAC: in the encrypted session, or in a policy session for a key bound to PCRs,
    /// or with a password session when bus encryption is off. HashingAlgorithm::Null uses the
    /// key's own scheme (SHA-1 or SHA-256).
    fn hmac(
        &mut self,
        object: ObjectHandle,
        message: &MaxBuffer,
        key: &PinnedKey,
    ) -> std::result::Result<Zeroizing<Vec<u8>>, (u32, Error)> {
        let policy = key.info.policy_bound;
        let session = if policy {
            if key.record.pcrs.is_empty() {
                return Err((0, Error::PolicyUnknown { rc: 0 }));
            }
            // A policy session is used up by the command it authorises: a new one each time.
            self.policy_session(key).map_err(|e| (0, e))?
        } else if self.bus_encryption {
            self.encrypting_session(key).map_err(|e| (0, e))?
        } else {
            AuthSession::Password
        };
        let hmac = |ctx: &mut Context| ctx.hmac(object, message.clone(), HashingAlgorithm::Null);
        let result = if policy {
            // A policy session is used up by the command it authorises.
            self.call_in_one_shot_session(session, hmac)
        } else {
            // The encrypting session: kept, or ended by the HMAC (a failure ends it in the caller).
            let result = self.call_in_session(session, hmac);
            if result.is_ok() && self.bus_encryption {
                self.session_used();
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
