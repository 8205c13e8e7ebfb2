//! Listing the HMAC keys in the TPM's persistent storage, with their KeePassXC addresses.

use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::TpmHandle;
use tss_esapi::structures::CapabilityData;

use crate::address::{KeyHandle, OWNER_PERSISTENT};
use crate::error::{Error, Result};
use crate::key::{KeyInfo, Object};
use crate::tpm::Tpm;

/// Handles asked for per GetCapability round trip (more than any TPM has slots).
const HANDLES_PER_CALL: u32 = 64;

impl Tpm {
    /// Every persistent handle in use in the owner range, in ascending order.
    pub fn persistent_handles(&mut self) -> Result<Vec<u32>> {
        let mut handles = Vec::new();
        let mut next = *OWNER_PERSISTENT.start();
        loop {
            let (data, more) = self.run("listing persistent handles", |ctx| {
                ctx.get_capability(CapabilityType::Handles, next, HANDLES_PER_CALL)
            })?;
            let CapabilityData::Handles(list) = data else {
                break;
            };
            let values: Vec<u32> = list.iter().map(|h: &TpmHandle| u32::from(*h)).collect();
            handles.extend(values.iter().copied().filter(|h| OWNER_PERSISTENT.contains(h)));
            match values.last() {
                Some(&last) if more && last < *OWNER_PERSISTENT.end() => next = last + 1,
                _ => break,
            }
        }
        Ok(handles)
    }

    /// The HMAC keys in persistent storage. Other objects (the SRK, endorsement keys, sealed
    /// data) are skipped.
    pub fn list_keys(&mut self) -> Result<Vec<KeyInfo>> {
        let mut keys = Vec::new();
        for value in self.persistent_handles()? {
            let handle = KeyHandle::new(value)?;
            match self.object_at(handle) {
                Ok(Object::Hmac(info)) => keys.push(info),
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
