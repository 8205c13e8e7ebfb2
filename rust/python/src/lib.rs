//! `keepassxc_tpm._native`: the core crate (`keepassxc-tpm`) for Python, under the pure-Python
//! `keepassxc_tpm` package that provides `TpmHmac` and `list_keys`. No TPM logic of its own: a
//! connection is the core's `TpmWorker` (10 s timeout, reconnects), challenges are the core's
//! (bus encryption, PIN, PCR policy, storage-key pin), and errors are the core's one-line
//! messages as Python exceptions. The GIL is released while the TPM works.
//!
//! # Notes on code safety
//! No `unsafe` here (`#![forbid(unsafe_code)]`); pyo3 holds the FFI. The response is handed to
//! Python as a `bytearray`, which the package wipes after copying it into kdbxtool's SecureBytes.
#![forbid(unsafe_code)]

#[cfg_attr(unix, path = "linux.rs")]
#[cfg_attr(windows, path = "windows.rs")]
mod backend;

use keepassxc_tpm::{ChallengeRule, Error, ErrorKind, PersistentHandle, Pin};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyByteArray;

create_exception!(keepassxc_tpm, TpmError, PyException, "Any failure of the TPM or of a TPM key.");

/// The exceptions below `TpmError`, declared once: each class and its registration in the module.
macro_rules! tpm_exceptions {
    ($($name:ident: $doc:literal,)*) => {
        $(create_exception!(keepassxc_tpm, $name, TpmError, $doc);)*

        fn add_exceptions(m: &Bound<'_, PyModule>) -> PyResult<()> {
            let py = m.py();
            m.add("TpmError", py.get_type::<TpmError>())?;
            $(m.add(stringify!($name), py.get_type::<$name>())?;)*
            Ok(())
        }
    };
}

tpm_exceptions! {
    NoTpm: "No TPM could be reached (or this user may not open it).",
    NoSuchKey: "No key at that handle (deleted, or the TPM was cleared).",
    NotHmacKey: "The handle holds something else, e.g. the storage root key.",
    PinRequired: "The key has a PIN and none was given.",
    WrongPin: "The TPM refused the PIN; the message says how many tries are left.",
    Lockout: "The TPM's dictionary-attack protection is locked out.",
    PolicyFailed: "The key is bound to a boot state (PCRs) that has changed.",
    StorageKeyChanged: "The TPM's storage key is not the one the key was made under.",
    MetadataError: "The keepassxc-tpm metadata file cannot be used, or names another key.",
    BadChallenge: "The challenge is longer than the 64 bytes a YubiKey slot takes.",
}

/// The core's error as the Python exception of its kind, with the remedy a Python user needs.
fn to_py(e: Error) -> PyErr {
    let remedy = match &e {
        Error::EmptyHandle { .. } | Error::NotHmacKey { .. } | Error::BadHandle(_) => {
            "; list the HMAC keys with keepassxc_tpm.list_keys() or `tpm-hmac list`"
        }
        Error::NoTpm { .. } | Error::UnknownTcti { .. } => "; pass tcti=... or set TPM2TOOLS_TCTI to pick another TPM",
        Error::PinRequired { .. } => "; pass pin= (a str, bytes, or a callable that returns it)",
        _ => "",
    };
    let message = format!("{}{remedy}", e.explained());
    match e.kind() {
        ErrorKind::NoTpm | ErrorKind::PermissionDenied => NoTpm::new_err(message),
        ErrorKind::NoSuchKey | ErrorKind::BadHandle => NoSuchKey::new_err(message),
        ErrorKind::NotHmacKey => NotHmacKey::new_err(message),
        ErrorKind::PinRequired => PinRequired::new_err(message),
        ErrorKind::AuthFailed => WrongPin::new_err(message),
        ErrorKind::Lockout => Lockout::new_err(message),
        ErrorKind::PolicyFailed => PolicyFailed::new_err(message),
        ErrorKind::StorageKeyChanged => StorageKeyChanged::new_err(message),
        ErrorKind::Metadata => MetadataError::new_err(message),
        ErrorKind::BadChallenge => BadChallenge::new_err(message),
        _ => TpmError::new_err(message),
    }
}

fn parse_handle(text: &str) -> PyResult<PersistentHandle> {
    text.parse::<PersistentHandle>().map_err(|bad| to_py(bad.into()))
}

fn summary_json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| TpmError::new_err(e.to_string()))
}

/// The padding rule a Python caller named.
fn rule_of(rule: &str) -> PyResult<ChallengeRule> {
    match rule {
        "keepassxc" => Ok(ChallengeRule::KeePassXC),
        "yubikey-manager" => Ok(ChallengeRule::YubikeyManager),
        other => {
            Err(PyValueError::new_err(format!("padding must be \"keepassxc\" or \"yubikey-manager\", not {other:?}")))
        }
    }
}

/// One TPM connection: on Linux the core's `TpmWorker` (a thread of its own), on Windows key files
/// through TBS (`windows.rs`). The methods are the same on both, so the Python package is too.
#[pyclass(frozen, module = "keepassxc_tpm._native")]
struct Connection {
    backend: backend::Backend,
}

#[pymethods]
impl Connection {
    #[new]
    #[pyo3(signature = (tcti=None))]
    fn new(tcti: Option<String>) -> PyResult<Self> {
        Ok(Connection { backend: backend::Backend::new(tcti)? })
    }

    /// The HMAC keys, as the JSON array `tpm-hmac list --json` prints.
    fn list_keys(&self, py: Python<'_>) -> PyResult<String> {
        summary_json(&py.detach(|| self.backend.list_keys()).map_err(to_py)?)
    }

    /// The HMAC key at `handle` ("0x81000100", or KeePassXC's decimal serial), as JSON.
    fn key(&self, py: Python<'_>, handle: &str) -> PyResult<String> {
        let handle = parse_handle(handle)?;
        summary_json(&py.detach(|| self.backend.key(handle)).map_err(to_py)?)
    }

    /// The serial of the key kept in the key file at `path` (its record's), as "0x82…".
    fn key_file_serial(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<String> {
        Ok(py.detach(|| self.backend.key_file_serial(path)).map_err(to_py)?.to_string())
    }

    /// The response of the key at `handle` to `challenge`, padded by `rule` ("keepassxc" or
    /// "yubikey-manager"), with `pin` (a bytearray the caller wipes; copied into memory wiped
    /// here) for a key that has one.
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
        let pin = pin.map(|p| zeroize::Zeroizing::new(p.to_vec()));
        let pin = pin.as_ref().map(|p| Pin::new(&p[..])).transpose().map_err(to_py)?;
        let response = py.detach(|| self.backend.challenge(handle, challenge, pin, rule)).map_err(to_py)?;
        Ok(PyByteArray::new(py, &response))
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Connection>()?;
    add_exceptions(m)
}
