//! What a TPM says about itself, for a health check (`tpm-hmac doctor`): who made it and its
//! firmware, room for more persistent keys, its PCR banks, and whether the object at 0x81000001
//! is the standard storage key. Nothing here changes the TPM.
//!
//! What the TPM says about itself: its types first, then the `impl Tpm` that uses them.

use crate::address::{PersistentHandle, SRK_HANDLE};
use crate::error::{Error, Result};
use crate::tpm::parent::ecc_srk_template;
use std::collections::HashMap;
use tss_esapi::constants::{CapabilityType, PropertyTag};
use tss_esapi::structures::CapabilityData;
use tss_esapi::structures::Public;

use super::Tpm;

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

impl Tpm {
    /// TPM properties `first..first + count` (one GetCapability).
    pub(crate) fn properties(&mut self, first: PropertyTag, count: u32) -> Result<HashMap<PropertyTag, u32>> {
        let (data, _) = self.run("reading the TPM's properties", |ctx| {
            ctx.get_capability(CapabilityType::TpmProperties, first.into(), count)
        })?;
        let CapabilityData::TpmProperties(list) = data else {
            return Err(Error::Wrapper {
                operation: "reading the TPM's properties",
                text: "not a property list".into(),
            });
        };
        Ok(list.iter().map(|p| (p.property(), p.value())).collect())
    }

    /// Maker, firmware, room for keys and PCR banks (three GetCapability commands).
    pub fn facts(&mut self) -> Result<TpmFacts> {
        let fixed = self.properties(PropertyTag::Manufacturer, 8)?;
        let word = |tag| fixed.get(&tag).copied().unwrap_or(0);
        let variable = self.properties(PropertyTag::HrPersistent, 2)?;
        let (data, _) =
            self.run("reading the PCR banks", |ctx| ctx.get_capability(CapabilityType::AssignedPcr, 0, 1))?;
        let pcr_banks = match data {
            CapabilityData::AssignedPcr(list) => list
                .get_selections()
                .iter()
                .filter(|bank| !bank.is_empty())
                .map(|bank| format!("{:?}", bank.hashing_algorithm()).to_lowercase())
                .collect(),
            _ => Vec::new(),
        };
        Ok(TpmFacts {
            manufacturer: text_of(&[word(PropertyTag::Manufacturer)]),
            vendor: text_of(&[
                word(PropertyTag::VendorString1),
                word(PropertyTag::VendorString2),
                word(PropertyTag::VendorString3),
                word(PropertyTag::VendorString4),
            ]),
            firmware: (word(PropertyTag::FirmwareVersion1), word(PropertyTag::FirmwareVersion2)),
            persistent_used: variable.get(&PropertyTag::HrPersistent).copied().unwrap_or(0),
            persistent_free: variable.get(&PropertyTag::HrPersistentAvail).copied().unwrap_or(0),
            pcr_banks,
        })
    }

    /// What sits at 0x81000001 (one ReadPublic).
    pub fn srk_state(&mut self) -> Result<SrkState> {
        let srk = PersistentHandle::new(SRK_HANDLE)?;
        let public = match self.public_at(srk) {
            Ok(public) => public,
            Err(Error::EmptyHandle { .. }) => return Ok(SrkState::Missing),
            Err(e) => return Err(e),
        };
        if is_standard_srk(&public) {
            return Ok(SrkState::Standard);
        }
        Ok(match crate::key::describe(srk, &public) {
            crate::key::Object::Other { what, storage: true } => SrkState::OtherStorageKey(what),
            crate::key::Object::Other { what, storage: false } => SrkState::NotStorageKey(what),
            crate::key::Object::Hmac(_) => SrkState::NotStorageKey("an HMAC key".to_owned()),
        })
    }
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
