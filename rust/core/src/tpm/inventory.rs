//! What the TPM says about itself (the `impl Tpm` of [`crate::inventory`]).

use crate::address::{PersistentHandle, SRK_HANDLE};
use crate::error::{Error, Result};
use crate::inventory::{is_standard_srk, text_of, SrkState, TpmFacts};
use std::collections::HashMap;
use tss_esapi::constants::{CapabilityType, PropertyTag};
use tss_esapi::structures::CapabilityData;

use super::Tpm;

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
