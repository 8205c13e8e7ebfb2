//! Helpers shared by the core's integration tests.
#![allow(dead_code)] // each test file uses some of them

use hmac::{Hmac, Mac};
use keepassxc_tpm::{Algorithm, KeySpec, Metadata, PersistentHandle, Secret, Tpm, TpmOptions};
use sha1::Sha1;
use swtpm_fixture::Swtpm;

pub const YUBIKEY_SECRET: &str = "303132333435363738393a3b3c3d3e3f40414243";

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

/// An independent statement of what a YubiKey slot in variable-length mode hashes for
/// KeePassXC: pad to 64 with the pad length (PKCS#7), then pop the trailing run.
pub fn reference_message(challenge: &[u8]) -> Vec<u8> {
    let mut block = challenge.to_vec();
    let pad = 64 - block.len();
    block.extend(std::iter::repeat_n(pad as u8, pad));
    let last = block[63];
    while block.last() == Some(&last) {
        block.pop();
    }
    block
}

pub fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
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
