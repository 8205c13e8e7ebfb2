//! Records of made-up HMAC keys, for tests of what reads record files (no TPM needed): a
//! keyed-hash public area built byte by byte, and a record pinning it, as JSON.

use sha2::{Digest, Sha256};

/// A keyed-hash TPMT_PUBLIC (TPM 2.0 Part 2, 12.2.4): nameAlg SHA-256; fixedTPM, fixedParent,
/// sensitiveDataOrigin, sign, noDA when `no_da`, userWithAuth without a policy; `policy` as its
/// authPolicy; the HMAC scheme with `hash` (0x0004 SHA-1, 0x000B SHA-256); a 32-byte unique.
pub fn hmac_public(no_da: bool, policy: &[u8], hash: u16) -> Vec<u8> {
    let user_with_auth = if policy.is_empty() { 0x40 } else { 0 };
    let attributes: u32 = 0x0004_0032 | user_with_auth | if no_da { 1 << 10 } else { 0 };
    let mut p = vec![0x00, 0x08, 0x00, 0x0B];
    p.extend(attributes.to_be_bytes());
    p.extend((policy.len() as u16).to_be_bytes());
    p.extend(policy);
    p.extend([0x00, 0x05]);
    p.extend(hash.to_be_bytes());
    p.extend([0x00, 0x20]);
    p.extend([0xAB; 32]);
    p
}

/// A record (the record file's JSON) pinning `public` by its SHA-256 name, with a storage key.
pub fn record_json(public: &[u8]) -> String {
    let name = format!("000b{}", hex::encode(Sha256::digest(public)));
    format!(r#"{{"key_name":"{name}","key_public":"{}","storage_key_name":"000b00"}}"#, hex::encode(public))
}
