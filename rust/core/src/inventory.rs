//! What a TPM says about itself, for a health check (`tpm-hmac doctor`): who made it and its
//! firmware, room for more persistent keys, its PCR banks, and whether the object at 0x81000001
//! is the standard storage key. Nothing here changes the TPM.

use tss_esapi::structures::Public;

use crate::parent::ecc_srk_template;

/// The TPM's own description of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmFacts {
    /// TPM_PT_MANUFACTURER as text ("IFX", "INTC", "AMD", "STM", "NTC", "IBM" for swtpm).
    pub manufacturer: String,
    /// TPM_PT_VENDOR_STRING_1..4, joined.
    pub vendor: String,
    /// TPM_PT_FIRMWARE_VERSION_1 and _2 as the TPM reports them.
    pub firmware: (u32, u32),
    /// Persistent objects stored (TPM_PT_HR_PERSISTENT).
    pub persistent_used: u32,
    /// Persistent objects that still fit (TPM_PT_HR_PERSISTENT_AVAIL, an estimate by the TPM).
    pub persistent_free: u32,
    /// The PCR banks with PCRs allocated, e.g. `["sha1", "sha256"]`.
    pub pcr_banks: Vec<String>,
}

impl TpmFacts {
    /// The firmware version as the major.minor most vendors use for TPM_PT_FIRMWARE_VERSION_1.
    pub fn firmware_version(&self) -> String {
        let (first, second) = self.firmware;
        format!("{}.{} (0x{first:08X} 0x{second:08X})", first >> 16, first & 0xFFFF)
    }
}

/// What sits at 0x81000001, where systemd, tpm2-tools and this project expect the SRK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SrkState {
    /// The TCG ECC P-256 SRK (the template systemd and `tpm2_createprimary -G ecc` make).
    Standard,
    /// A storage key, but from another template (e.g. RSA-2048): sessions work, but are slower.
    OtherStorageKey(String),
    /// Something that is not a storage key.
    NotStorageKey(String),
    /// Nothing: every challenge session then first creates a storage primary key.
    Missing,
}

/// Is `public` the standard ECC SRK? Everything but the public point (the TPM's own) must match.
pub(crate) fn is_standard_srk(public: &Public) -> bool {
    let Ok(Public::Ecc { object_attributes, name_hashing_algorithm, auth_policy, parameters, .. }) = ecc_srk_template()
    else {
        return false;
    };
    matches!(public, Public::Ecc {
        object_attributes: a, name_hashing_algorithm: n, auth_policy: p, parameters: q, ..
    } if *a == object_attributes && *n == name_hashing_algorithm && *p == auth_policy && *q == parameters)
}

pub(crate) fn text_of(words: &[u32]) -> String {
    let bytes: Vec<u8> =
        words.iter().flat_map(|w| w.to_be_bytes()).filter(|b| b.is_ascii_graphic() || *b == b' ').collect();
    String::from_utf8_lossy(&bytes).split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manufacturer_words_become_text() {
        assert_eq!(text_of(&[0x4942_4D00]), "IBM");
        assert_eq!(text_of(&[0x4946_5800]), "IFX");
        assert_eq!(text_of(&[0x5357_2020, 0x2054_504D]), "SW TPM");
    }

    #[test]
    fn the_template_itself_is_the_standard_srk() {
        assert!(is_standard_srk(&ecc_srk_template().unwrap()));
    }
}
