//! Binding a key to the boot state: a PolicyPCR policy over SHA-256 PCRs. The policy digest is
//! computed by the TPM in a trial session at provisioning, from the PCR values of that moment;
//! a challenge replays PolicyPCR in a policy session, which only matches while the PCRs do.

use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{Digest, PcrSelectionList, PcrSelectionListBuilder, PcrSlot, SymmetricDefinition};

use crate::error::{Error, Result};
use crate::tpm::Tpm;

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

fn selection(pcrs: &[u8]) -> Result<PcrSelectionList> {
    let wrap = |e: tss_esapi::Error| Error::Wrapper { operation: "selecting PCRs", text: e.to_string() };
    let slots =
        pcrs.iter().map(|&n| PcrSlot::try_from(1u32 << n)).collect::<tss_esapi::Result<Vec<_>>>().map_err(wrap)?;
    PcrSelectionListBuilder::new().with_selection(HashingAlgorithm::Sha256, &slots).build().map_err(wrap)
}

impl Tpm {
    /// The policy digest of "these PCRs hold the values they hold now".
    pub(crate) fn pcr_policy_digest(&mut self, pcrs: &[u8]) -> Result<Digest> {
        let selection = selection(pcrs)?;
        let trial = self
            .run("starting a trial policy session", |ctx| {
                ctx.start_auth_session(
                    None,
                    None,
                    None,
                    SessionType::Trial,
                    SymmetricDefinition::Null,
                    HashingAlgorithm::Sha256,
                )
            })?
            .ok_or_else(|| Error::Wrapper {
                operation: "starting a trial policy session",
                text: "no session".into(),
            })?;
        let digest = self
            .apply_policy_pcr(trial, &selection)
            .and_then(|policy| self.run("reading the policy digest", |ctx| ctx.policy_get_digest(policy)));
        self.flush_session(trial);
        digest
    }

    /// A policy session that satisfies the key's PCR policy for one command, salted with the
    /// storage key and encrypting like the plain challenge session when bus encryption is on.
    /// Returns it with the name of the storage key that salted it.
    pub(crate) fn pcr_session(&mut self, pcrs: &[u8]) -> Result<(AuthSession, Option<String>)> {
        let selection = selection(pcrs)?;
        let (salt, symmetric) = if self.bus_encryption {
            (Some(self.storage_parent(false)?), SymmetricDefinition::AES_128_CFB)
        } else {
            (None, SymmetricDefinition::Null)
        };
        let salted_by = salt.as_ref().map(|p| self.name_of(p.handle.into())).transpose();
        let started = self.run("starting the policy session", |ctx| {
            ctx.start_auth_session(
                salt.as_ref().map(|p| p.handle),
                None,
                None,
                SessionType::Policy,
                symmetric,
                HashingAlgorithm::Sha256,
            )
        });
        if let Some(parent) = salt {
            self.release_parent(parent);
        }
        let session = started?
            .ok_or_else(|| Error::Wrapper { operation: "starting the policy session", text: "no session".into() })?;
        let ready = (|| {
            // Not continued: the session ends with the HMAC it authorises (tss-esapi starts
            // sessions with continueSession set).
            let encrypt = self.bus_encryption;
            let (attributes, mask) = SessionAttributesBuilder::new()
                .with_decrypt(false)
                .with_encrypt(encrypt)
                .with_continue_session(false)
                .build();
            self.run("setting the session attributes", |ctx| ctx.tr_sess_set_attributes(session, attributes, mask))?;
            self.apply_policy_pcr(session, &selection)?;
            salted_by
        })();
        match ready {
            Ok(name) => Ok((session, name)),
            Err(e) => {
                self.flush_session(session);
                Err(e)
            }
        }
    }

    fn apply_policy_pcr(&mut self, session: AuthSession, selection: &PcrSelectionList) -> Result<PolicySession> {
        let policy = PolicySession::try_from(session)
            .map_err(|e| Error::Wrapper { operation: "starting the policy session", text: e.to_string() })?;
        // An empty digest: the TPM takes the PCRs' current values.
        self.run("applying the PCR policy", |ctx| ctx.policy_pcr(policy, Digest::default(), selection.clone()))?;
        Ok(policy)
    }
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
