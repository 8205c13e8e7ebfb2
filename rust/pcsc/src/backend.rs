//! The driver's one door to the core: a TPM worker kept for as long as pcscd runs, the config
//! file as the connection's metadata (so each key is pinned to its record), and every TPM
//! failure sorted into "try again later" or "this key is not served".
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use keepassxc_tpm::cards::PCSCD_DROP_IN as DROP_IN;
use keepassxc_tpm::{Error, ErrorKind, Hint, Metadata, PersistentHandle, TpmOptions, TpmWorker};
use zeroize::Zeroizing;

/// How long a challenge waits for the TPM: below KeePassXC's and pcscd's patience, so that an APDU
/// is answered (with an error) within 10 s even when the TPM hangs. A TPM answers an HMAC in
/// milliseconds.
const TIMEOUT: Duration = Duration::from_secs(8);

/// After a TPM that did not answer in time, how long challenges fail at once instead of each
/// waiting for the timeout again (KeePassXC sends several APDUs per unlock).
const COOL_DOWN: Duration = Duration::from_secs(5);

/// Why a challenge got no response.
#[derive(Debug, PartialEq, Eq)]
pub enum NoResponse {
    /// The TPM is gone, hung or busy: the card stays, the next challenge tries again.
    Unavailable(String),
    /// The key is not what the file pins (another key, none, a PIN key, PCRs changed): the card
    /// goes until the file changes.
    Refused(String),
}

/// The TPM as the driver uses it.
pub struct Backend {
    tcti: Option<String>,
    config: PathBuf,
    /// The connection, with the file as its metadata; a new one after the file changed.
    worker: Option<TpmWorker>,
    cool_down_until: Option<Instant>,
}

impl Backend {
    /// A TPM reached through `tcti` (the core's default search when `None`), whose keys are pinned
    /// by the records in the file at `config`. Nothing is opened until the first challenge.
    pub fn new(tcti: Option<String>, config: PathBuf) -> Backend {
        Backend { tcti, config, worker: None, cool_down_until: None }
    }

    /// The TCTI this backend opens.
    pub fn tcti(&self) -> Option<&str> {
        self.tcti.as_deref()
    }

    /// The file changed: the next challenge opens a new connection, which checks its key against
    /// the file's records again.
    pub fn recheck(&mut self) {
        self.worker = None;
    }

    /// The TPM's HMAC of what a YubiKey slot with the key's own rule (its record's mode) hashes of
    /// the 64-byte `block`. The core checks the key against its record before any authorisation
    /// (a key with a PIN put where the pinned key was is never tried: no dictionary-attack try).
    pub fn hmac(&mut self, handle: PersistentHandle, block: &[u8; 64]) -> Result<Zeroizing<Vec<u8>>, NoResponse> {
        if self.cool_down_until.is_some_and(|until| Instant::now() < until) {
            return Err(NoResponse::Unavailable("the TPM did not answer a moment ago".to_owned()));
        }
        let options = TpmOptions::tcti(self.tcti.clone()).with_metadata(Metadata::service_file(&self.config));
        // After a timeout the worker starts a new thread and connection itself.
        let worker = self.worker.get_or_insert_with(|| TpmWorker::start(options, TIMEOUT));
        let block = Zeroizing::new(*block);
        let result = worker.run(move |tpm| tpm.challenge_block(handle, &block, None));
        match result {
            Ok(response) => {
                self.cool_down_until = None;
                Ok(response)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    fn failed(&mut self, e: Error) -> NoResponse {
        if matches!(e, Error::Timeout { .. }) {
            self.cool_down_until = Some(Instant::now() + COOL_DOWN);
        }
        match e.kind() {
            ErrorKind::NoSuchKey
            | ErrorKind::NotHmacKey
            | ErrorKind::BadHandle
            | ErrorKind::PinRequired
            | ErrorKind::PolicyFailed
            | ErrorKind::StorageKeyChanged
            | ErrorKind::Metadata => NoResponse::Refused(in_pcscd(&e)),
            _ => NoResponse::Unavailable(in_pcscd(&e)),
        }
    }
}

/// `e` with the remedy that fits a driver inside pcscd: a user's remedy for the device's permissions
/// ("add yourself to the group") is wrong for a daemon, whose unit decides its groups.
fn in_pcscd(e: &Error) -> String {
    match e.hint() {
        Some(Hint::JoinGroup { group }) => format!(
            "{e}; pcscd's unit must grant the group \"{group}\": the tpm-hmac package's drop-in \
             {DROP_IN} adds it (reinstall the package if it is missing, then systemctl daemon-reload and \
             systemctl restart pcscd)"
        ),
        Some(Hint::AskForAccess) => {
            format!("{e}; pcscd's unit must be able to open it: see {DROP_IN}, and the device's owner and mode")
        }
        _ => e.explained(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permission_problem_names_the_unit_not_a_users_group() {
        let mut backend = Backend::new(None, PathBuf::from("/etc/keepassxc-tpm/pcsc.json"));
        let denied = Error::PermissionDenied { device: "/dev/tpmrm0".into(), group: Some("tss".into()) };
        let NoResponse::Unavailable(said) = backend.failed(denied) else { panic!("not a refusal of the key") };
        assert!(said.contains("/dev/tpmrm0") && said.contains(DROP_IN) && said.contains("\"tss\""), "{said}");
        assert!(!said.contains("usermod") && !said.contains("log in again"), "{said}");
    }
}
