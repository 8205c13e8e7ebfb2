//! The hash of an HMAC key (SHA-1 as a YubiKey slot, or SHA-256), re-exported as
//! [`crate::key::Algorithm`] and [`crate::Algorithm`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
#[cfg(unix)]
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
#[cfg(unix)]
use tss_esapi::structures::{HmacScheme, KeyedHashScheme, PublicKeyedHashParameters};

/// The hash of an HMAC key. SHA-1 is what a YubiKey slot computes and KeePassXC expects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// HMAC-SHA1, what a YubiKey slot computes (20-byte responses).
    #[default]
    Sha1,
    /// HMAC-SHA256 (32-byte responses).
    Sha256,
}

impl Algorithm {
    #[cfg(unix)]
    pub(crate) fn hashing(self) -> HashingAlgorithm {
        match self {
            Algorithm::Sha1 => HashingAlgorithm::Sha1,
            Algorithm::Sha256 => HashingAlgorithm::Sha256,
        }
    }

    /// Bytes in a response, and in an imported secret.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    #[cfg(unix)]
    pub(crate) fn parameters(self) -> PublicKeyedHashParameters {
        PublicKeyedHashParameters::new(KeyedHashScheme::Hmac { hmac_scheme: HmacScheme::new(self.hashing()) })
    }

    #[cfg(unix)]
    /// The algorithm of a keyed-hash object's parameters, if it is an HMAC key we support.
    /// (tss-esapi 7.7 has no getter for the scheme; its parameters compare by value.)
    pub(crate) fn of(parameters: &PublicKeyedHashParameters) -> Option<Algorithm> {
        [Algorithm::Sha1, Algorithm::Sha256].into_iter().find(|a| a.parameters() == *parameters)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Sha1 => "HMAC-SHA1",
            Algorithm::Sha256 => "HMAC-SHA256",
        })
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sha1" | "hmacsha1" => Ok(Algorithm::Sha1),
            "sha256" | "hmacsha256" => Ok(Algorithm::Sha256),
            _ => Err(format!("unknown algorithm \"{s}\"; use sha1 (YubiKey-compatible) or sha256")),
        }
    }
}
