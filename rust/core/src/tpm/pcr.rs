//! Binding a key to the boot state: a PolicyPCR policy over SHA-256 PCRs, followed by
//! PolicyAuthValue when the key has a PIN. The policy digest is computed by the TPM in a trial
//! session at provisioning, from the PCR values of that moment; a challenge replays the policy
//! in a policy session, which only matches while the PCRs do (and only with the right PIN).
//!
//! PCR policy sessions: its types first, then the `impl Tpm` that uses them.

use crate::error::{Error, Result};
use crate::tpm::pinned::PinnedKey;
use crate::tpm::session::SessionUse;
use tss_esapi::constants::SessionType;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{Digest, PcrSelectionList, PcrSelectionListBuilder, PcrSlot};

use super::Tpm;

/// PCRs a key may be bound to (the 24 of a PC TPM's SHA-256 bank).
pub const MAX_PCR: u8 = 23;

/// Parses `7`, `0,2,7` or `7+16` into a sorted list of PCR indices.
pub fn parse_pcrs(text: &str) -> std::result::Result<Vec<u8>, String> {
    let mut pcrs = Vec::new();
    for part in text.split([',', '+', ' ']).filter(|p| !p.is_empty()) {
        match part.parse::<u8>() {
            Ok(n) if n <= MAX_PCR => pcrs.push(n),
            _ => return Err(format!("\"{part}\" is not a PCR index 0-{MAX_PCR}")),
        }
    }
    if pcrs.is_empty() {
        return Err("no PCR given; e.g. --pcrs 7 (Secure Boot state)".to_owned());
    }
    pcrs.sort_unstable();
    pcrs.dedup();
    Ok(pcrs)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pcr_lists() {
        assert_eq!(parse_pcrs("7").unwrap(), vec![7]);
        assert_eq!(parse_pcrs("16,7+7 0").unwrap(), vec![0, 7, 16]);
        assert!(parse_pcrs("24").is_err());
        assert!(parse_pcrs("").is_err());
        assert!(parse_pcrs("seven").is_err());
    }
}
