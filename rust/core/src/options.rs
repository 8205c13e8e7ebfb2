//! How a connection to the TPM is opened ([`TpmOptions`]): which TPM, where the keys' records
//! are, and the settings that hold for the connection's whole life, so that nothing has to be
//! flushed or cleared because one of them changed halfway.

use crate::metadata::Metadata;

/// The settings of a [`Tpm`](crate::Tpm) connection, given when it is opened.
#[derive(Clone, Debug)]
pub struct TpmOptions {
    /// The TCTI (`device:/dev/tpmrm0`, `swtpm:host=…,port=…`, …); `None`: `TPM2TOOLS_TCTI` /
    /// `TCTI` / `TEST_TCTI`, else the default search ([`Tcti`](crate::Tcti)).
    pub tcti: Option<String>,
    /// The metadata file keys are checked against; `None`: the per-user default
    /// ([`Metadata::default_location`]).
    pub metadata: Option<Metadata>,
    /// Challenges run in a session salted with the storage key, whose response the TPM encrypts.
    /// On unless switched off to debug or to measure it (the response then crosses the bus in
    /// clear, and keys with a PIN are refused).
    pub bus_encryption: bool,
    /// Keep the encrypted session from one challenge to the next (a warm challenge is then one TPM
    /// command). `None`: where a resource manager flushes it when the connection closes
    /// ([`Tcti::flushes_on_close`](crate::Tcti::flushes_on_close)); elsewhere only for callers that
    /// drop the `Tpm` before they exit: a TPM without a resource manager has three session slots.
    pub session_reuse: Option<bool>,
    /// Keys without PIN or policy are challenged in sessions computed in Rust (the direct path);
    /// off: tpm2-tss's ESYS for every challenge (to compare the two paths, or to measure them).
    pub direct_path: bool,
}

impl Default for TpmOptions {
    fn default() -> TpmOptions {
        TpmOptions { tcti: None, metadata: None, bus_encryption: true, session_reuse: None, direct_path: true }
    }
}

impl TpmOptions {
    /// The defaults, for the TPM named by `tcti` (`None`: the environment, else the default search).
    pub fn tcti(tcti: Option<impl Into<String>>) -> TpmOptions {
        TpmOptions { tcti: tcti.map(Into::into), ..TpmOptions::default() }
    }

    /// These options with `metadata` as the file keys are checked against.
    pub fn with_metadata(self, metadata: Metadata) -> TpmOptions {
        TpmOptions { metadata: Some(metadata), ..self }
    }

    /// These options with bus encryption on or off.
    pub fn with_bus_encryption(self, on: bool) -> TpmOptions {
        TpmOptions { bus_encryption: on, ..self }
    }

    /// These options with the session kept (or not) from one challenge to the next.
    pub fn with_session_reuse(self, on: bool) -> TpmOptions {
        TpmOptions { session_reuse: Some(on), ..self }
    }

    /// These options with the direct path on or off.
    pub fn with_direct_path(self, on: bool) -> TpmOptions {
        TpmOptions { direct_path: on, ..self }
    }
}
