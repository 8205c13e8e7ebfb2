//! The `Connection` of the Windows build: key files through Windows' TPM Base Services (the core's
//! `KeyFileTpm`), with the records in `%LOCALAPPDATA%\keepassxc-tpm\keys.json`. The same methods
//! as Linux's, so the pure-Python package is the same; keys with a PIN or PCR policy, and keys at
//! persistent handles, are Linux's alone. A TBS context is opened per call (TBS flushes what it
//! held when it closes); the GIL is released while the TPM works.

use keepassxc_tpm::{KeyFileTpm, KeySummary, Metadata};
use pyo3::prelude::*;
use pyo3::types::PyByteArray;

use crate::{parse_handle, rule_of, summary_json, to_py, NoTpm, TpmError};

#[pyclass(frozen, module = "keepassxc_tpm._native")]
pub struct Connection {}

#[pymethods]
impl Connection {
    #[new]
    #[pyo3(signature = (tcti=None))]
    fn new(tcti: Option<String>) -> PyResult<Self> {
        match tcti {
            None => Ok(Connection {}),
            Some(tcti) => Err(NoTpm::new_err(format!(
                "on Windows the TPM is reached through TBS: tcti={tcti:?} cannot be used; leave it out"
            ))),
        }
    }

    /// The key files the record file holds, as the JSON array `tpm-hmac list --json` prints.
    fn list_keys(&self, py: Python<'_>) -> PyResult<String> {
        let keys = py.detach(|| KeyFileTpm::list_in(&Metadata::default_location())).map_err(to_py)?;
        summary_json(&keys.iter().map(|(key, _)| KeySummary::from(key)).collect::<Vec<_>>())
    }

    /// The key file with serial `handle` ("0x82…"), as JSON.
    fn key(&self, py: Python<'_>, handle: &str) -> PyResult<String> {
        let handle = parse_handle(handle)?;
        let (_, key) = py.detach(|| KeyFileTpm::serial_in(&Metadata::default_location(), handle)).map_err(to_py)?;
        summary_json(&KeySummary::from(&key))
    }

    /// The serial of the key kept in the key file at `path` (its record's), as "0x82…".
    fn key_file_serial(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<String> {
        let (handle, _, _) = py.detach(|| KeyFileTpm::key_in(&Metadata::default_location(), &path)).map_err(to_py)?;
        Ok(handle.to_string())
    }

    /// The response of the key file `handle` to `challenge`, padded by `rule`. A PIN is refused:
    /// keys with one are not made by this build.
    #[pyo3(signature = (handle, challenge, pin=None, rule="keepassxc"))]
    fn challenge<'py>(
        &self,
        py: Python<'py>,
        handle: &str,
        challenge: Vec<u8>,
        pin: Option<Bound<'py, PyByteArray>>,
        rule: &str,
    ) -> PyResult<Bound<'py, PyByteArray>> {
        let handle = parse_handle(handle)?;
        let rule = rule_of(rule)?;
        if pin.is_some() {
            return Err(TpmError::new_err("keys with a PIN are not supported on Windows; leave pin= out"));
        }
        let response = py
            .detach(|| KeyFileTpm::open(Metadata::default_location())?.challenge_serial(handle, &challenge, rule))
            .map_err(to_py)?;
        Ok(PyByteArray::new(py, &response))
    }
}
