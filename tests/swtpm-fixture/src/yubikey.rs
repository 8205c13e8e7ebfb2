//! An independent statement of what a YubiKey HMAC-SHA1 slot computes, for the tests' expected
//! responses: the secret KeePassXC's own YubiKey tests use, the padding of each client, and what a
//! slot in variable-length mode hashes of the 64-byte block.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The HMAC-SHA1 secret the tests' keys hold (20 bytes, hex as ykman shows it).
pub const YUBIKEY_SECRET: &str = "303132333435363738393a3b3c3d3e3f40414243";

/// HMAC-SHA1 of `message` under `key`.
pub fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// HMAC-SHA1 of `message` under [`YUBIKEY_SECRET`].
pub fn yubikey_hmac(message: &[u8]) -> Vec<u8> {
    hmac_sha1(&hex::decode(YUBIKEY_SECRET).expect("hex"), message)
}

/// KeePassXC's 64-byte block: PKCS#7 padding (the pad length, repeated).
pub fn keepassxc_block(challenge: &[u8]) -> [u8; 64] {
    let pad = 64 - challenge.len();
    let mut block = challenge.to_vec();
    block.resize(64, pad as u8);
    block.try_into().expect("64 bytes")
}

/// yubikit's 64-byte block: padding with a byte that differs from the last one.
pub fn yubikit_block(challenge: &[u8]) -> [u8; 64] {
    let mut block = challenge.to_vec();
    block.resize(64, if challenge.last() == Some(&0) { 1 } else { 0 });
    block.try_into().expect("64 bytes")
}

/// What a slot in variable-length mode hashes of a 64-byte block: the block without its last
/// byte and every byte before it that equals it.
pub fn slot_message(block: &[u8; 64]) -> Vec<u8> {
    let mut message = block.to_vec();
    let last = block[63];
    while message.last() == Some(&last) {
        message.pop();
    }
    message
}

/// What a variable-length slot hashes for KeePassXC's `challenge`.
pub fn reference_message(challenge: &[u8]) -> Vec<u8> {
    slot_message(&keepassxc_block(challenge))
}
