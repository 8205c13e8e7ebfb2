//! A secret to import, parsed from hex the way ykman prints a challenge-response secret.

use zeroize::Zeroizing;

use crate::algorithm::Algorithm;
use crate::error::{Error, Result};

/// HMAC key material. Zeroized on drop; never logged (its `Debug` hides the bytes).
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Parses hex digits; spaces, tabs, newlines and colons between them are ignored.
    pub fn from_hex(text: &str) -> Result<Secret> {
        let digits: Zeroizing<Vec<u8>> =
            Zeroizing::new(text.bytes().filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b':')).collect());
        if digits.is_empty() {
            return Err(Error::BadSecret {
                reason: "the secret is empty; give it as hex, e.g. 40 hex digits for 20 bytes".into(),
            });
        }
        if let Some(pos) = digits.iter().position(|b| !b.is_ascii_hexdigit()) {
            return Err(Error::BadSecret {
                reason: format!("character {} is not a hex digit; give the secret as hex (0-9, a-f)", pos + 1),
            });
        }
        if !digits.len().is_multiple_of(2) {
            return Err(Error::BadSecret {
                reason: format!("{} hex digits is an odd number; a byte takes two", digits.len()),
            });
        }
        let mut bytes = Zeroizing::new(vec![0u8; digits.len() / 2]);
        hex::decode_to_slice(&digits[..], &mut bytes[..]).map_err(|e| Error::BadSecret { reason: e.to_string() })?;
        Ok(Secret(bytes))
    }

    /// Hex, or a recovery code as `create --recovery` shows it (told apart by length: a code
    /// has 36 or 56 characters, a secret 40 or 64 hex digits).
    pub fn parse(text: &str) -> Result<Secret> {
        let chars = text.chars().filter(|c| c.is_ascii_alphanumeric()).count();
        if chars == 36 || chars == 56 {
            crate::recovery::decode(text).map(Secret)
        } else {
            Secret::from_hex(text)
        }
    }

    /// `len` bytes from the operating system's random generator.
    pub fn generate(len: usize) -> Result<Secret> {
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        crate::random::fill(&mut bytes)?;
        Ok(Secret(bytes))
    }

    /// The secret's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// A YubiKey HMAC-SHA1 slot holds exactly 20 bytes; an HMAC-SHA256 key takes 32.
    pub fn check_length(&self, algorithm: Algorithm) -> Result<()> {
        let want = algorithm.digest_len();
        if self.0.len() == want {
            Ok(())
        } else {
            Err(Error::BadSecret {
                reason: format!(
                    "the secret has {} bytes; an {algorithm} key takes exactly {want} bytes ({} hex digits)",
                    self.0.len(),
                    want * 2
                ),
            })
        }
    }
}

/// A key's PIN. The TPM's authValue is SHA-256 of it (as systemd does), so any length works.
/// Zeroized on drop; never logged.
#[derive(Clone)]
pub struct Pin(Zeroizing<Vec<u8>>);

impl Pin {
    /// A PIN as typed, as bytes (UTF-8 as a rule, but any bytes work); a trailing newline
    /// (from a file or a pipe) is not part of it.
    pub fn new(text: impl AsRef<[u8]>) -> Result<Pin> {
        let text = text.as_ref();
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.is_empty() {
            return Err(Error::NoPinEntered);
        }
        Ok(Pin(Zeroizing::new(text.to_vec())))
    }

    /// Whether two PINs are the same (to confirm a new one).
    pub fn matches(&self, other: &Pin) -> bool {
        self.0 == other.0
    }

    /// The authValue: SHA-256 of the PIN without trailing zero bytes, which the TPM would drop.
    #[cfg(unix)]
    pub(crate) fn auth_value(&self) -> Zeroizing<Vec<u8>> {
        use sha2::Digest;
        let mut digest = Zeroizing::new(sha2::Sha256::digest(&self.0[..]).to_vec());
        while digest.last() == Some(&0) {
            digest.pop();
        }
        digest
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(..)")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ykman_style_hex() {
        let s = Secret::from_hex("303132333435363738393a3b3c3d3e3f40414243\n").unwrap();
        assert_eq!(s.bytes(), b"0123456789:;<=>?@ABC");
        let spaced = Secret::from_hex("30 31:32\t33").unwrap();
        assert_eq!(spaced.bytes(), b"0123");
    }

    #[test]
    fn refuses_bad_hex_with_a_reason() {
        for (input, needle) in [("", "empty"), ("abc", "odd"), ("zz", "not a hex digit"), ("0x1234", "not a hex digit")]
        {
            match Secret::from_hex(input) {
                Err(Error::BadSecret { reason }) => {
                    assert!(reason.contains(needle), "{input:?}: {reason}")
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn length_must_match_the_algorithm() {
        let s = Secret::from_hex(&"ab".repeat(20)).unwrap();
        assert!(s.check_length(Algorithm::Sha1).is_ok());
        assert!(matches!(s.check_length(Algorithm::Sha256), Err(Error::BadSecret { .. })));
        assert_eq!(format!("{s:?}"), "Secret(20 bytes)");
    }
}
