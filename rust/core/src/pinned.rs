//! What a challenge trusts about a key and its storage key, and why.
//!
//! A ReadPublic answer is not authenticated: an interposer can answer it with anything. So a
//! challenge compares what it is told with what was recorded when the key was provisioned
//! (or, for a key made by other tools, when it was first used: trust on first use):
//! - the key's TPM name must be the recorded one; its public area, recorded too, is taken only
//!   when it hashes to that name, so the key's attributes (PIN or not, PCR policy or not) come
//!   from the key, never from the file's say-so;
//! - the storage key that salts the session must have the recorded name, checked before the
//!   salt is encrypted to it.
//!
//! A record that exists but does not match is an error, never "no record".

use sha2::{Digest as _, Sha256};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::Public;
use tss_esapi::traits::{Marshall, UnMarshall};

use crate::key::KeyInfo;
use crate::metadata::KeyRecord;

/// A key as a challenge may use it: what it is, and what it was pinned to.
#[derive(Clone, Debug)]
pub(crate) struct PinnedKey {
    pub(crate) info: KeyInfo,
    pub(crate) record: KeyRecord,
}

impl PinnedKey {
    /// The name of the storage key this key's sessions must be salted with.
    pub(crate) fn storage_key_name(&self) -> &str {
        self.record.storage_key_name.as_deref().unwrap_or_default()
    }
}

/// The TPM name of a public area: its name algorithm's ID and the hash of its TPMT_PUBLIC
/// (TPM 2.0 Part 1, 16). Only SHA-256 names are computed (our keys and the SRK use them).
pub(crate) fn public_and_name(public: &Public) -> Option<(Vec<u8>, String)> {
    if public.name_hashing_algorithm() != HashingAlgorithm::Sha256 {
        return None;
    }
    let bytes = public.marshall().ok()?;
    let name = format!("000b{}", hex::encode(Sha256::digest(&bytes)));
    Some((bytes, name))
}

/// The public area recorded as `hex`, if it is the one named `name`.
pub(crate) fn recorded_public(hex: &str, name: &str) -> Option<Public> {
    let bytes = hex::decode(hex).ok()?;
    let public = Public::unmarshall(&bytes).ok()?;
    (public_and_name(&public)?.1 == name && public.marshall().ok()? == bytes).then_some(public)
}
