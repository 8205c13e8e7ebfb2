//! Listing keys (the `impl Tpm` of [`crate::store`]).

use crate::address::{PersistentHandle, OWNER_PERSISTENT};
use crate::error::{Error, Result};
use crate::key::{KeyInfo, Object};
use tss_esapi::constants::{CapabilityType, PropertyTag};
use tss_esapi::handles::TpmHandle;
use tss_esapi::structures::CapabilityData;

use super::Tpm;

/// How often a list that disagrees with the count is read again.
const LIST_ATTEMPTS: usize = 3;
/// All persistent handles, the owner's and the platform's (TPM 2.0 Part 2, 7.6).
const PERSISTENT_FIRST: u32 = 0x8100_0000;
const PERSISTENT_LAST: u32 = 0x81FF_FFFF;
/// Handles asked for per GetCapability round trip (more than any TPM has slots).
const HANDLES_PER_CALL: u32 = 64;

impl Tpm {
    /// Every persistent handle in use in the owner range, in ascending order. The list is
    /// checked against the TPM's count of persistent objects, so a malformed or cut answer is an
    /// error, never a shorter list. (Another program may add or remove a key between the two
    /// questions: a mismatch is asked again before it counts.)
    pub fn persistent_handles(&mut self) -> Result<Vec<u32>> {
        let mut mismatch = None;
        for _ in 0..LIST_ATTEMPTS {
            let mut all = self.all_persistent_handles()?;
            let counted = self.persistent_count()?;
            if counted == Some(all.len() as u32) {
                all.retain(|h| OWNER_PERSISTENT.contains(h));
                return Ok(all);
            }
            mismatch = Some((all.len(), counted));
        }
        let (listed, counted) = mismatch.unwrap_or_default();
        Err(malformed(format!(
            "the TPM listed {listed} persistent objects but counts {}: its answer was malformed or altered",
            counted.map_or_else(|| "none".to_owned(), |c| c.to_string())
        )))
    }

    fn all_persistent_handles(&mut self) -> Result<Vec<u32>> {
        let mut all = Vec::new();
        let mut next = PERSISTENT_FIRST;
        loop {
            let (data, more) = self.run("listing persistent handles", |ctx| {
                ctx.get_capability(CapabilityType::Handles, next, HANDLES_PER_CALL)
            })?;
            let CapabilityData::Handles(list) = data else {
                return Err(malformed("the TPM's answer is not a list of handles".to_owned()));
            };
            let values: Vec<u32> = list.iter().map(|h: &TpmHandle| u32::from(*h)).collect();
            all.extend(values.iter().copied().filter(|h| (PERSISTENT_FIRST..=PERSISTENT_LAST).contains(h)));
            match values.last() {
                Some(&last) if more && last < PERSISTENT_LAST => next = last + 1,
                _ => return Ok(all),
            }
        }
    }

    /// TPM_PT_HR_PERSISTENT, if the TPM says it.
    fn persistent_count(&mut self) -> Result<Option<u32>> {
        Ok(self.properties(PropertyTag::HrPersistent, 1)?.get(&PropertyTag::HrPersistent).copied())
    }

    /// The HMAC keys in persistent storage. Other objects (the SRK, endorsement keys, sealed
    /// data) are skipped.
    pub fn list_keys(&mut self) -> Result<Vec<KeyInfo>> {
        let handles = self.persistent_handles()?;
        self.keys_among(&handles)
    }

    /// The HMAC keys among `handles` (as [`Tpm::persistent_handles`] lists them), for a caller
    /// that needs both without asking the TPM for the list twice.
    pub fn keys_among(&mut self, handles: &[u32]) -> Result<Vec<KeyInfo>> {
        let mut keys = Vec::new();
        for &value in handles {
            let handle = PersistentHandle::new(value)?;
            match self.object_at(handle) {
                Ok(Object::Hmac(info)) => keys.push(self.labelled(info)),
                // Kept resolved: the SRK is needed again to salt the session.
                Ok(Object::Other { .. }) => {}
                // Deleted between the two calls by another program: not a key any more.
                Err(Error::EmptyHandle { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(keys)
    }
}

fn malformed(text: String) -> Error {
    Error::Wrapper { operation: "listing persistent handles", text }
}
