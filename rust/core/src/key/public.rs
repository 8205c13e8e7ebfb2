//! Public areas (TPMT_PUBLIC, TPM 2.0 Part 2, 12.2.4) as bytes, without tss-esapi: the templates of
//! HMAC keys and of the standard ECC storage primary, their names, and reading back what a
//! recorded or returned area is. The Windows build has only these; on Linux they are checked
//! byte for byte against tss-esapi's own marshalling (tests/direct_keys.rs), so a key made by
//! either build is the same key to the other.

use sha2::{Digest, Sha256};

use super::{Algorithm, KeyInfo, Origin, EMPTY_POLICY};
use crate::address::PersistentHandle;
use crate::direct::wire::Reader;

const ALG_KEYEDHASH: u16 = 0x0008;
const ALG_ECC: u16 = 0x0023;
const ALG_HMAC: u16 = 0x0005;
const ALG_SHA1: u16 = 0x0004;
const ALG_SHA256: u16 = 0x000B;
const ALG_AES: u16 = 0x0006;
const ALG_CFB: u16 = 0x0043;
const ALG_NULL: u16 = 0x0010;
const ECC_NIST_P256: u16 = 0x0003;

/// Object attributes (Part 2, 8.3).
mod attr {
    pub const FIXED_TPM: u32 = 1 << 1;
    pub const FIXED_PARENT: u32 = 1 << 4;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    pub const NO_DA: u32 = 1 << 10;
    pub const RESTRICTED: u32 = 1 << 16;
    pub const DECRYPT: u32 = 1 << 17;
    pub const SIGN_ENCRYPT: u32 = 1 << 18;
}

/// The TPM name of a marshalled TPMT_PUBLIC whose name algorithm is SHA-256 (`None` for another
/// name algorithm): TPM_ALG_SHA256 and the SHA-256 of those bytes. The one place names are made.
pub(crate) fn sha256_name(public: &[u8]) -> Option<Vec<u8>> {
    const NAME_ALG_SHA256: [u8; 2] = ALG_SHA256.to_be_bytes();
    (public.get(2..4) == Some(&NAME_ALG_SHA256[..])).then(|| [&NAME_ALG_SHA256[..], &Sha256::digest(public)].concat())
}

fn hash_id(algorithm: Algorithm) -> u16 {
    match algorithm {
        Algorithm::Sha1 => ALG_SHA1,
        Algorithm::Sha256 => ALG_SHA256,
    }
}

/// The template of an HMAC key without a PIN or PCR policy, as `tpm-hmac create` makes it on
/// Linux: fixedTPM, fixedParent, sign, noDA, sensitiveDataOrigin when generated, and the empty
/// policy as its only authorisation (userWithAuth clear).
pub(crate) fn hmac_template(algorithm: Algorithm, origin: Origin) -> Vec<u8> {
    let mut attributes = attr::FIXED_TPM | attr::FIXED_PARENT | attr::SIGN_ENCRYPT | attr::NO_DA;
    if origin == Origin::Generated {
        attributes |= attr::SENSITIVE_DATA_ORIGIN;
    }
    let mut t = Vec::with_capacity(48);
    t.extend_from_slice(&ALG_KEYEDHASH.to_be_bytes());
    t.extend_from_slice(&ALG_SHA256.to_be_bytes());
    t.extend_from_slice(&attributes.to_be_bytes());
    t.extend_from_slice(&(EMPTY_POLICY.len() as u16).to_be_bytes());
    t.extend_from_slice(&EMPTY_POLICY);
    t.extend_from_slice(&ALG_HMAC.to_be_bytes());
    t.extend_from_slice(&hash_id(algorithm).to_be_bytes());
    t.extend_from_slice(&0u16.to_be_bytes()); // unique: empty
    t
}

/// The TCG "H-2" ECC P-256 storage template (TCG TPM v2.0 Provisioning Guidance, 7.5.1), empty
/// unique: the primary a key file's parent 0x40000001 names, as systemd and tpm2-tools make it.
pub(crate) fn ecc_srk_template() -> Vec<u8> {
    let attributes = attr::FIXED_TPM
        | attr::FIXED_PARENT
        | attr::SENSITIVE_DATA_ORIGIN
        | attr::USER_WITH_AUTH
        | attr::NO_DA
        | attr::RESTRICTED
        | attr::DECRYPT;
    let mut t = Vec::with_capacity(32);
    for v in [ALG_ECC, ALG_SHA256] {
        t.extend_from_slice(&v.to_be_bytes());
    }
    t.extend_from_slice(&attributes.to_be_bytes());
    t.extend_from_slice(&0u16.to_be_bytes()); // authPolicy: empty
    for v in [ALG_AES, 128, ALG_CFB, ALG_NULL, ECC_NIST_P256, ALG_NULL, 0, 0] {
        t.extend_from_slice(&v.to_be_bytes()); // symmetric, scheme, curve, kdf, unique x and y empty
    }
    t
}

/// The HMAC key a public area describes (`None` for any other object, or bytes that do not parse
/// to their end). `handle` is the serial it is known by.
pub(crate) fn hmac_key(handle: PersistentHandle, public: &[u8]) -> Option<KeyInfo> {
    let mut r = Reader::new(public);
    let kind = r.u16("type").ok()?;
    let _name_alg = r.u16("nameAlg").ok()?;
    let attributes = r.u32("objectAttributes").ok()?;
    let policy = r.sized("authPolicy").ok()?;
    if kind != ALG_KEYEDHASH || r.u16("scheme").ok()? != ALG_HMAC {
        return None;
    }
    let algorithm = match r.u16("hashAlg").ok()? {
        ALG_SHA1 => Algorithm::Sha1,
        ALG_SHA256 => Algorithm::Sha256,
        _ => return None,
    };
    r.sized("unique").ok()?;
    r.done().ok()?;
    let has = |bit: u32| attributes & bit != 0;
    if !has(attr::SIGN_ENCRYPT) || has(attr::DECRYPT) || has(attr::RESTRICTED) {
        return None;
    }
    Some(KeyInfo {
        handle,
        algorithm,
        origin: if has(attr::SENSITIVE_DATA_ORIGIN) { Origin::Generated } else { Origin::Imported },
        no_da: has(attr::NO_DA),
        policy_bound: !has(attr::USER_WITH_AUTH) && !policy.is_empty() && policy != EMPTY_POLICY,
        empty_policy: !has(attr::USER_WITH_AUTH) && policy == EMPTY_POLICY,
        fixed_tpm: has(attr::FIXED_TPM),
        fixed_parent: has(attr::FIXED_PARENT),
        label: None,
    })
}

/// The public point (x, y) of an ECC P-256 restricted decryption (storage) key's public area,
/// `None` for anything else: what a session is salted to.
pub(crate) fn storage_point(public: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut r = Reader::new(public);
    let kind = r.u16("type").ok()?;
    let _name_alg = r.u16("nameAlg").ok()?;
    let attributes = r.u32("objectAttributes").ok()?;
    r.sized("authPolicy").ok()?;
    let storage = attributes & (attr::RESTRICTED | attr::DECRYPT) == attr::RESTRICTED | attr::DECRYPT;
    if kind != ALG_ECC || !storage || r.u16("symmetric").ok()? != ALG_AES {
        return None;
    }
    let (_bits, _mode) = (r.u16("keyBits").ok()?, r.u16("mode").ok()?);
    if r.u16("scheme").ok()? != ALG_NULL || r.u16("curve").ok()? != ECC_NIST_P256 || r.u16("kdf").ok()? != ALG_NULL {
        return None;
    }
    let x = r.sized("x").ok()?.to_vec();
    let y = r.sized("y").ok()?.to_vec();
    r.done().ok()?;
    (x.len() == 32 && y.len() == 32).then_some((x, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_reads_back_as_the_key_it_makes() {
        let handle = PersistentHandle::new(0x8200_0001).unwrap();
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256] {
            for origin in [Origin::Generated, Origin::Imported] {
                let info = hmac_key(handle, &hmac_template(algorithm, origin)).unwrap();
                assert_eq!((info.algorithm, info.origin), (algorithm, origin));
                assert!(info.no_da && info.empty_policy && !info.policy_bound && info.fixed_tpm);
            }
        }
        assert!(hmac_key(handle, &ecc_srk_template()).is_none(), "a storage key is no HMAC key");
        let template = hmac_template(Algorithm::Sha1, Origin::Generated);
        for cut in 0..template.len() {
            assert!(hmac_key(handle, &template[..cut]).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn storage_points_need_both_coordinates() {
        assert!(storage_point(&ecc_srk_template()).is_none(), "the template's point is empty");
        let mut public = ecc_srk_template();
        public.truncate(public.len() - 4);
        for _ in 0..2 {
            public.extend_from_slice(&32u16.to_be_bytes());
            public.extend_from_slice(&[7; 32]);
        }
        assert_eq!(storage_point(&public), Some((vec![7; 32], vec![7; 32])));
        assert!(hmac_key(PersistentHandle::new(0x8100_0001).unwrap(), &public).is_none());
    }
}
