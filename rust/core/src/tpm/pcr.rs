//! PCR policy sessions (the `impl Tpm` of [`crate::pcr`]).

use crate::error::{Error, Result};
use crate::pinned::PinnedKey;
use crate::session::SessionUse;
use tss_esapi::constants::SessionType;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{Digest, PcrSelectionList, PcrSelectionListBuilder, PcrSlot};

use super::Tpm;

impl Tpm {
    /// The policy digest of "these PCRs hold the values they hold now", and of "the PIN is
    /// given" when `with_pin` (PolicyAuthValue: a policy of PolicyPCR alone needs no authValue,
    /// so without it a PIN on a PCR-bound key would not be checked at all).
    pub(crate) fn policy_digest(&mut self, pcrs: &[u8], with_pin: bool) -> Result<Digest> {
        let selection = selection(pcrs)?;
        let trial = self.salted_session(None, SessionType::Trial, SessionUse::Plain)?;
        let digest = self
            .apply_policy(trial, &selection, with_pin)
            .and_then(|policy| self.run("reading the policy digest", |ctx| ctx.policy_get_digest(policy)));
        self.flush_session(trial);
        digest
    }

    /// A policy session that satisfies `key`'s policy for one command, salted with its pinned
    /// storage key and encrypting like the plain challenge session when bus encryption is on.
    pub(crate) fn policy_session(&mut self, key: &PinnedKey) -> Result<AuthSession> {
        let selection = selection(&key.record.pcrs)?;
        let session = if self.bus_encryption {
            self.with_salt_key(key, |tpm, salt| {
                tpm.salted_session(Some(salt.handle), SessionType::Policy, SessionUse::Challenge { keep: false })
            })?
        } else {
            self.salted_session(None, SessionType::Policy, SessionUse::Plain)?
        };
        match self.apply_policy(session, &selection, key.info.needs_pin()) {
            Ok(_) => Ok(session),
            Err(e) => {
                self.flush_session(session);
                Err(e)
            }
        }
    }

    fn apply_policy(
        &mut self,
        session: AuthSession,
        selection: &PcrSelectionList,
        with_pin: bool,
    ) -> Result<PolicySession> {
        let policy = PolicySession::try_from(session)
            .map_err(|e| Error::Wrapper { operation: "starting the policy session", text: e.to_string() })?;
        // An empty digest: the TPM takes the PCRs' current values.
        self.run("applying the PCR policy", |ctx| ctx.policy_pcr(policy, Digest::default(), selection.clone()))?;
        if with_pin {
            // ESYS then puts the key's authValue into the session's HMAC and encryption key.
            self.run("applying the PIN policy", |ctx| ctx.policy_auth_value(policy))?;
        }
        Ok(policy)
    }
}

fn selection(pcrs: &[u8]) -> Result<PcrSelectionList> {
    let wrap = |e: tss_esapi::Error| Error::Wrapper { operation: "selecting PCRs", text: e.to_string() };
    let slots =
        pcrs.iter().map(|&n| PcrSlot::try_from(1u32 << n)).collect::<tss_esapi::Result<Vec<_>>>().map_err(wrap)?;
    PcrSelectionListBuilder::new().with_selection(HashingAlgorithm::Sha256, &slots).build().map_err(wrap)
}
