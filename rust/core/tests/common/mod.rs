//! Helpers shared by the core's integration tests.
#![allow(dead_code)] // each test file uses some of them

use keepassxc_tpm::{Algorithm, KeySpec, Metadata, PersistentHandle, Secret, Tpm, TpmOptions};
use swtpm_fixture::Swtpm;

#[allow(unused_imports)] // each test binary uses some of them
pub use swtpm_fixture::yubikey::{hmac_sha1, reference_message, YUBIKEY_SECRET};

pub fn handle(value: u32) -> PersistentHandle {
    PersistentHandle::new(value).unwrap()
}

pub fn open(swtpm: &Swtpm) -> Tpm {
    open_at(swtpm, &swtpm.tcti())
}

/// A connection to `tcti` (the swtpm, or a proxy in front of it) with the test's own metadata file.
pub fn open_at(swtpm: &Swtpm, tcti: &str) -> Tpm {
    Tpm::open(&options_at(swtpm, tcti)).expect("swtpm reachable")
}

/// The options of [`open_at`], for a test to change one of them.
pub fn options_at(swtpm: &Swtpm, tcti: &str) -> TpmOptions {
    TpmOptions::tcti(Some(tcti)).with_metadata(Metadata::at(swtpm.dir().join("keys.json")))
}

pub fn import(tpm: &mut Tpm, secret_hex: &str, at: Option<u32>, algorithm: Algorithm) -> PersistentHandle {
    let spec = KeySpec { handle: at.map(handle), algorithm, ..KeySpec::default() };
    tpm.import_key(&spec, &Secret::from_hex(secret_hex).unwrap()).expect("import").handle
}

#[allow(unused_imports)] // each test binary uses some of them
pub use swtpm_fixture::commands::{FLUSH_CONTEXT, HMAC, READ_PUBLIC, START_AUTH_SESSION};

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
