//! The session cryptography of TPM 2.0 Part 1 (11.4 and 19.6) for one salted HMAC session with
//! SHA-256 and AES-128-CFB response encryption: KDFa, KDFe, the ECDH salt, the session HMACs and
//! the parameter cipher. All keys are zeroized when dropped.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use hmac::{Hmac, Mac};
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p256::{EncodedPoint, PublicKey, SecretKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;
type Aes128CfbDec = cfb_mode::Decryptor<aes::Aes128>;
type Aes128CfbEnc = cfb_mode::Encryptor<aes::Aes128>;

/// Bytes of a SHA-256 digest: the session key, nonces and the salt have this size.
pub const DIGEST: usize = 32;

/// KDFa (Part 1, 11.4.10.2) with HMAC-SHA256: `bits` of key material from `key`, a `label`
/// (its terminating zero is added here) and two contexts.
pub fn kdfa(key: &[u8], label: &str, context_u: &[u8], context_v: &[u8], bits: u32) -> Zeroizing<Vec<u8>> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + DIGEST));
    let mut counter = 1u32;
    while out.len() < bytes {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(&counter.to_be_bytes());
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(context_u);
        mac.update(context_v);
        mac.update(&bits.to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
        counter += 1;
    }
    out.truncate(bytes);
    out
}

/// KDFe (Part 1, 11.4.10.3) with SHA-256, for the ECDH salt.
pub fn kdfe(z: &[u8], label: &str, party_u: &[u8], party_v: &[u8], bits: u32) -> Zeroizing<Vec<u8>> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + DIGEST));
    let mut counter = 1u32;
    while out.len() < bytes {
        let mut hash = Sha256::new();
        hash.update(counter.to_be_bytes());
        hash.update(z);
        hash.update(label.as_bytes());
        hash.update([0]);
        hash.update(party_u);
        hash.update(party_v);
        out.extend_from_slice(&hash.finalize());
        counter += 1;
    }
    out.truncate(bytes);
    out
}

/// A salt for StartAuthSession: its value, and the ephemeral public point (x, y) the TPM needs to
/// compute it with the storage key's private key (Part 1, C.6.1, ECDH with KDFe "SECRET").
pub struct Salt {
    pub value: Zeroizing<Vec<u8>>,
    pub ephemeral_x: Vec<u8>,
    pub ephemeral_y: Vec<u8>,
}

/// A new salt for the P-256 storage key whose public point is (x, y); `None` when that is not a
/// point on P-256.
pub fn ecdh_salt(x: &[u8], y: &[u8]) -> Option<Salt> {
    if x.len() != DIGEST || y.len() != DIGEST {
        return None;
    }
    let point = EncodedPoint::from_affine_coordinates(x.into(), y.into(), false);
    let storage_key = Option::<PublicKey>::from(PublicKey::from_encoded_point(&point))?;
    let ephemeral = ephemeral_key()?;
    let ephemeral_point = ephemeral.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), storage_key.as_affine());
    let ephemeral_x = ephemeral_point.x()?.to_vec();
    let ephemeral_y = ephemeral_point.y()?.to_vec();
    let value = kdfe(shared.raw_secret_bytes(), "SECRET", &ephemeral_x, x, (DIGEST * 8) as u32);
    Some(Salt { value, ephemeral_x, ephemeral_y })
}

/// The session key of a salted, unbound session (Part 1, 19.6.8).
pub fn session_key(salt: &[u8], nonce_tpm: &[u8], nonce_caller: &[u8]) -> Zeroizing<Vec<u8>> {
    kdfa(salt, "ATH", nonce_tpm, nonce_caller, (DIGEST * 8) as u32)
}

/// The HMAC key of a session used for an entity: sessionKey || authValue (Part 1, 19.6.8).
fn hmac_key(session_key: &[u8], auth_value: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(Vec::with_capacity(session_key.len() + auth_value.len()));
    key.extend_from_slice(session_key);
    key.extend_from_slice(auth_value);
    key
}

/// The session HMAC over a command's or a response's parameter hash (Part 1, 19.6.5):
/// HMAC(sessionKey || authValue, pHash || nonceNewer || nonceOlder || attributes).
pub fn session_hmac(
    session_key: &[u8],
    auth_value: &[u8],
    p_hash: &[u8],
    nonce_newer: &[u8],
    nonce_older: &[u8],
    attributes: u8,
) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(&hmac_key(session_key, auth_value)).expect("any key length");
    mac.update(p_hash);
    mac.update(nonce_newer);
    mac.update(nonce_older);
    mac.update(&[attributes]);
    mac
}

/// cpHash or rpHash: SHA-256 over the parts given, in order.
pub fn parameter_hash(parts: &[&[u8]]) -> [u8; DIGEST] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().into()
}

/// Decrypts a response's first parameter in place (AES-128-CFB, Part 1, 21.3).
pub fn decrypt_response(session_key: &[u8], auth_value: &[u8], nonce_tpm: &[u8], nonce_caller: &[u8], data: &mut [u8]) {
    let material = kdfa(&hmac_key(session_key, auth_value), "CFB", nonce_tpm, nonce_caller, 256);
    let cipher = Aes128CfbDec::new(material[..16].into(), material[16..32].into());
    cipher.decrypt(data);
}

/// Encrypts a command's first parameter (the bytes inside its TPM2B) for a session with the decrypt
/// attribute (Part 1, 21.3: AES-CFB, the key and IV from KDFa with the caller's nonce first).
pub fn encrypt_command(session_key: &[u8], auth_value: &[u8], nonce_caller: &[u8], nonce_tpm: &[u8], data: &mut [u8]) {
    let material = kdfa(&hmac_key(session_key, auth_value), "CFB", nonce_caller, nonce_tpm, 256);
    let cipher = Aes128CfbEnc::new(material[..16].into(), material[16..32].into());
    cipher.encrypt(data);
}

/// A new P-256 private key from the operating system's random generator (`None` if it fails).
fn ephemeral_key() -> Option<SecretKey> {
    let mut bytes = Zeroizing::new([0u8; DIGEST]);
    loop {
        crate::random::fill(&mut bytes[..]).ok()?;
        // Out of range (zero, or at least the group order) with a chance of about 2^-32: draw again.
        if let Ok(key) = SecretKey::from_slice(&bytes[..]) {
            return Some(key);
        }
    }
}

/// `len` bytes from the operating system's random generator (`None` if it fails).
pub fn nonce(len: usize) -> Option<Vec<u8>> {
    let mut bytes = vec![0u8; len];
    crate::random::fill(&mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_is_the_counter_mode_hmac_of_the_spec() {
        // One block: HMAC(key, 00000001 || "ATH" 00 || u || v || 00000100).
        let mut mac = HmacSha256::new_from_slice(b"key").unwrap();
        mac.update(&[0, 0, 0, 1]);
        mac.update(b"ATH\0uv");
        mac.update(&256u32.to_be_bytes());
        assert_eq!(&kdfa(b"key", "ATH", b"u", b"v", 256)[..], &mac.finalize().into_bytes()[..]);
        assert_eq!(kdfa(b"key", "CFB", b"u", b"v", 384).len(), 48, "two blocks, cut");
        // The length in bits is part of every block's input.
        assert_ne!(kdfa(b"key", "CFB", b"u", b"v", 384)[..32], kdfa(b"key", "CFB", b"u", b"v", 256)[..]);
    }

    #[test]
    fn kdfe_is_the_counter_mode_hash_of_the_spec() {
        let expected = Sha256::digest([&[0, 0, 0, 1][..], b"z", b"SECRET\0", b"u", b"v"].concat());
        assert_eq!(&kdfe(b"z", "SECRET", b"u", b"v", 256)[..], &expected[..]);
    }

    #[test]
    fn salts_need_a_point_on_the_curve() {
        assert!(ecdh_salt(&[1; 32], &[2; 32]).is_none());
        assert!(ecdh_salt(&[1; 31], &[2; 32]).is_none());
        let point = p256::SecretKey::random(&mut rand_core::OsRng).public_key().to_encoded_point(false);
        let salt = ecdh_salt(point.x().unwrap(), point.y().unwrap()).expect("a real point");
        assert_eq!(salt.value.len(), 32);
        assert_eq!((salt.ephemeral_x.len(), salt.ephemeral_y.len()), (32, 32));
    }
}
