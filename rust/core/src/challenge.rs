//! KeePassXC's challenge → the bytes a YubiKey slot would hash → one TPM2_HMAC.
//!
//! KeePassXC pads the challenge PKCS#7-style to 64 bytes (a 32-byte KDF seed gets 32 bytes of
//! 0x20). A slot in variable-length HMAC mode then drops the last byte of the 64 and every byte
//! before it that equals it, and hashes the rest. Doing the same here gives the response a
//! YubiKey holding the same secret would give: a TPM key and a YubiKey can be twins.

use crate::error::{Error, Result};

/// A YubiKey challenge block.
pub const CHALLENGE_BLOCK: usize = 64;

/// The message a variable-length YubiKey HMAC slot hashes for KeePassXC's `challenge`.
pub fn yubikey_message(challenge: &[u8]) -> Result<Vec<u8>> {
    ChallengeRule::KeePassXC.message(challenge)
}

/// How a YubiKey HMAC slot was programmed: whether it hashes a variable-length challenge (the
/// padded block with its trailing run dropped, `ykpersonalize -ochal-btn-trig -ohmac-lt64`, what
/// `ykman otp chalresp` sets) or always all 64 bytes of the padded block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotMode {
    /// Hashes the challenge as given (the padded block with its trailing run dropped).
    #[default]
    Variable,
    /// Hashes all 64 bytes of the padded block.
    Fixed,
}

impl SlotMode {
    pub(crate) fn is_variable(&self) -> bool {
        *self == SlotMode::Variable
    }
}

impl std::str::FromStr for SlotMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "variable" => Ok(SlotMode::Variable),
            "fixed" | "fixed64" => Ok(SlotMode::Fixed),
            _ => Err(format!("unknown YubiKey mode \"{s}\"; use variable (the default) or fixed (64 bytes)")),
        }
    }
}

impl std::fmt::Display for SlotMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlotMode::Variable => "variable-length challenges",
            SlotMode::Fixed => "fixed 64-byte challenges",
        })
    }
}

/// How a challenge becomes the bytes a YubiKey slot hashes, which depends on the program that
/// pads it to the slot's 64-byte block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChallengeRule {
    /// KeePassXC: PKCS#7 padding (a 32-byte KDF seed gets 32 bytes of 0x20), so a seed that
    /// itself ends in 0x20 loses those bytes too.
    #[default]
    KeePassXC,
    /// yubikey-manager (and so kdbxtool's `YubiKeyHmacSha1`): padding with a byte that differs
    /// from the last one, so a challenge shorter than 64 bytes is hashed as given.
    YubikeyManager,
}

impl ChallengeRule {
    /// The bytes a slot in variable-length mode hashes for `challenge` (0 to 64 bytes).
    pub fn message(self, challenge: &[u8]) -> Result<Vec<u8>> {
        self.message_for(challenge, SlotMode::Variable)
    }

    /// The bytes a slot in `mode` hashes for `challenge` (0 to 64 bytes).
    pub fn message_for(self, challenge: &[u8], mode: SlotMode) -> Result<Vec<u8>> {
        if challenge.len() > CHALLENGE_BLOCK {
            return Err(Error::ChallengeTooLong { len: challenge.len() });
        }
        let mut block = challenge.to_vec();
        let pad = match self {
            ChallengeRule::KeePassXC => (CHALLENGE_BLOCK - challenge.len()) as u8,
            ChallengeRule::YubikeyManager if challenge.last() == Some(&0) => 1,
            ChallengeRule::YubikeyManager => 0,
        };
        block.resize(CHALLENGE_BLOCK, pad);
        if mode == SlotMode::Variable {
            // The slot drops the last byte and every byte before it that equals it.
            let last = block[CHALLENGE_BLOCK - 1];
            let kept = block.iter().rposition(|&b| b != last).map_or(0, |i| i + 1);
            block.truncate(kept);
        }
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_seed_is_hashed_as_is() {
        let seed: Vec<u8> = (101..=132).collect(); // does not end in the 0x20 padding byte
        assert_eq!(yubikey_message(&seed).unwrap(), seed);
    }

    #[test]
    fn trailing_bytes_equal_to_the_padding_are_dropped_too() {
        let mut seed = vec![7u8; 30];
        seed.extend([0x20, 0x20]);
        assert_eq!(yubikey_message(&seed).unwrap(), vec![7u8; 30]);
    }

    #[test]
    fn full_block_drops_its_trailing_run() {
        let mut block = vec![1u8; 60];
        block.extend([9, 9, 9, 9]);
        assert_eq!(yubikey_message(&block).unwrap(), vec![1u8; 60]);
        assert_eq!(yubikey_message(&[5u8; 64]).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn empty_and_short_challenges() {
        assert_eq!(yubikey_message(&[]).unwrap(), Vec::<u8>::new());
        assert_eq!(yubikey_message(&[0xAA]).unwrap(), vec![0xAA]);
        assert_eq!(yubikey_message(&[63]).unwrap(), Vec::<u8>::new(), "a 1-byte 63 equals its padding");
        assert_eq!(yubikey_message(&[0u8; 63]).unwrap(), vec![0u8; 63]);
    }

    #[test]
    fn yubikey_manager_hashes_short_challenges_as_given() {
        let rule = ChallengeRule::YubikeyManager;
        let mut seed = vec![7u8; 30];
        seed.extend([0x20, 0x20]);
        assert_eq!(rule.message(&seed).unwrap(), seed, "a seed ending in 0x20 keeps it");
        let mut zeros = vec![7u8; 30];
        zeros.extend([0, 0]);
        assert_eq!(rule.message(&zeros).unwrap(), zeros, "and one ending in 0x00 too (padded with 0x01)");
        assert_eq!(rule.message(&[]).unwrap(), Vec::<u8>::new());
        assert_ne!(yubikey_message(&seed).unwrap(), rule.message(&seed).unwrap(), "where the rules differ");
    }

    #[test]
    fn a_fixed_slot_hashes_the_whole_padded_block() {
        let mut seed = vec![7u8; 30];
        seed.extend([0x20, 0x20]);
        let block = ChallengeRule::KeePassXC.message_for(&seed, SlotMode::Fixed).unwrap();
        assert_eq!(block.len(), 64);
        assert_eq!(&block[..32], &seed[..]);
        assert!(block[32..].iter().all(|&b| b == 0x20), "PKCS#7: 32 bytes of 32");
        assert_eq!(ChallengeRule::YubikeyManager.message_for(&seed, SlotMode::Fixed).unwrap()[32..], [0u8; 32]);
    }

    #[test]
    fn longer_than_a_block_is_refused() {
        assert!(matches!(yubikey_message(&[0u8; 65]), Err(Error::ChallengeTooLong { len: 65 })));
    }
}
