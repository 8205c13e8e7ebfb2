//! The `Connection`'s TPM on Windows: key files through Windows' TPM Base Services (the core's
//! `KeyFileTpm`), with the records in `%LOCALAPPDATA%\keepassxc-tpm\keys.json`. Keys with a PIN or
//! PCR policy and persistent keys are Linux's alone, so a PIN given is never needed (as on Linux for
//! a key without one). A TBS context is opened per challenge (TBS flushes what it held when it
//! closes).

use keepassxc_tpm::{ChallengeRule, KeyFileTpm, KeySummary, Metadata, PersistentHandle, Pin, Result};
use pyo3::PyResult;
use zeroize::Zeroizing;

use crate::NoTpm;

pub struct Backend {}

impl Backend {
    pub fn new(tcti: Option<String>) -> PyResult<Backend> {
        match tcti {
            None => Ok(Backend {}),
            Some(tcti) => Err(NoTpm::new_err(format!(
                "on Windows the TPM is reached through TBS: tcti={tcti:?} cannot be used; leave it out"
            ))),
        }
    }

    pub fn list_keys(&self) -> Result<Vec<KeySummary>> {
        Ok(KeyFileTpm::list_in(&Metadata::default_location())?.iter().map(|(key, _)| KeySummary::from(key)).collect())
    }

    pub fn key(&self, handle: PersistentHandle) -> Result<KeySummary> {
        Ok(KeySummary::from(&KeyFileTpm::serial_in(&Metadata::default_location(), handle)?.1))
    }

    pub fn key_file_serial(&self, path: std::path::PathBuf) -> Result<PersistentHandle> {
        Ok(KeyFileTpm::key_in(&Metadata::default_location(), &path)?.0)
    }

    pub fn challenge(
        &self,
        handle: PersistentHandle,
        challenge: Vec<u8>,
        _pin: Option<Pin>,
        rule: ChallengeRule,
    ) -> Result<Zeroizing<Vec<u8>>> {
        KeyFileTpm::open(Metadata::default_location())?.challenge_serial(handle, &challenge, rule)
    }
}
