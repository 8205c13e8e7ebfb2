//! The `Connection`'s TPM on Linux: the core's `TpmWorker` (10 s timeout, reconnects), with every
//! key kind (persistent, key files, PIN, PCR policy).

use keepassxc_tpm::{ChallengeRule, KeySummary, PersistentHandle, Pin, Result, TpmOptions, TpmWorker, DEFAULT_TIMEOUT};
use pyo3::PyResult;
use zeroize::Zeroizing;

pub struct Backend {
    worker: TpmWorker,
}

impl Backend {
    pub fn new(tcti: Option<String>) -> PyResult<Backend> {
        Ok(Backend { worker: TpmWorker::start(TpmOptions::tcti(tcti), DEFAULT_TIMEOUT) })
    }

    pub fn list_keys(&self) -> Result<Vec<KeySummary>> {
        Ok(self.worker.run(|tpm| tpm.list_keys())?.iter().map(KeySummary::from).collect())
    }

    pub fn key(&self, handle: PersistentHandle) -> Result<KeySummary> {
        Ok(KeySummary::from(&self.worker.run(move |tpm| tpm.key_info(handle))?))
    }

    pub fn key_file_serial(&self, path: std::path::PathBuf) -> Result<PersistentHandle> {
        self.worker.run(move |tpm| tpm.file_key_serial(&path))
    }

    pub fn challenge(
        &self,
        handle: PersistentHandle,
        challenge: Vec<u8>,
        pin: Option<Pin>,
        rule: ChallengeRule,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.worker.run(move |tpm| tpm.challenge_by_rule(handle, &challenge, pin.as_ref(), rule))
    }
}
