//! Listing keys. Where the direct path speaks the TCTI (`/dev/tpmrm0`, swtpm), the list and
//! each public area are read and parsed here (one GetCapability for the handles, one ReadPublic
//! per handle), and the names they give are the ones the direct path checks before a
//! connection's first HMAC on a handle; anything the direct path cannot read or parse is read
//! again through ESYS.

use crate::address::{PersistentHandle, OWNER_PERSISTENT};
use crate::direct::Fallback;
use crate::error::{Error, Result};
use crate::key::{describe, KeyInfo, Object};
use crate::rc::{self, codes};
use tss_esapi::constants::{CapabilityType, PropertyTag};
use tss_esapi::handles::TpmHandle;
use tss_esapi::structures::{CapabilityData, Public};
use tss_esapi::traits::{Marshall, UnMarshall};

use super::Tpm;

/// How often a list that disagrees with the count is read again.
const LIST_ATTEMPTS: usize = 3;
/// All persistent handles, the owner's and the platform's (TPM 2.0 Part 2, 7.6).
const PERSISTENT_FIRST: u32 = 0x8100_0000;
const PERSISTENT_LAST: u32 = 0x81FF_FFFF;
/// Handles asked for per GetCapability round trip (more than any TPM has slots).
const HANDLES_PER_CALL: u32 = 64;

impl Tpm {
    /// Every persistent handle in use in the owner range, in ascending order. A malformed or
    /// cut answer is an error, never a shorter list: the direct path's parser refuses any list
    /// whose bytes do not hold the number of handles it states; through ESYS the list is checked
    /// against the TPM's count of persistent objects (one more command).
    pub fn persistent_handles(&mut self) -> Result<Vec<u32>> {
        let read = if self.listing_direct() { self.direct_persistent_handles() } else { None };
        let mut all = match read {
            Some(all) => all,
            None => self.counted_persistent_handles()?,
        };
        all.retain(|h| OWNER_PERSISTENT.contains(h));
        Ok(all)
    }

    /// The direct path for listing, opened if need be; `false` where it does not speak the TCTI
    /// (or is switched off): ESYS lists.
    fn listing_direct(&mut self) -> bool {
        self.on_direct(|_| Ok(())).is_some()
    }

    /// Every persistent handle, read and parsed by the direct path; `None` when it could not (a
    /// malformed answer, a TPM error, a busy TPM): ESYS asks again.
    fn direct_persistent_handles(&mut self) -> Option<Vec<u32>> {
        let read = self.on_direct(|direct| {
            let mut all = Vec::new();
            let mut next = PERSISTENT_FIRST;
            loop {
                let (more, values) = direct.handles(next, HANDLES_PER_CALL)?;
                all.extend(values.iter().copied().filter(|h| (PERSISTENT_FIRST..=PERSISTENT_LAST).contains(h)));
                match values.last() {
                    Some(&last) if more && last < PERSISTENT_LAST => next = last + 1,
                    _ => return Ok(all),
                }
            }
        })?;
        read.ok()
    }

    /// Every persistent handle through ESYS, checked against the TPM's count of persistent
    /// objects. (Another program may add or remove a key between the two questions: a mismatch
    /// is asked again before it counts.)
    fn counted_persistent_handles(&mut self) -> Result<Vec<u32>> {
        let mut mismatch = (0, None);
        for _ in 0..LIST_ATTEMPTS {
            let all = self.all_persistent_handles()?;
            let counted = self.persistent_count()?;
            if counted == Some(all.len() as u32) {
                return Ok(all);
            }
            mismatch = (all.len(), counted);
        }
        let (listed, counted) = mismatch;
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

    /// The HMAC keys in persistent storage, then the user's key files (from their records, checked
    /// against the TPM when used). Other objects (the SRK, endorsement keys, sealed data) are
    /// skipped.
    ///
    /// Behind a resource manager, the keys' first challenges are prepared too (their names
    /// were just read; the salted session is started now and kept), so that a challenge after
    /// listing, when KeePassXC's user clicks Unlock, is the HMAC alone.
    pub fn list_keys(&mut self) -> Result<Vec<KeyInfo>> {
        let handles = self.persistent_handles()?;
        self.with_snapshot(|tpm| {
            let mut keys = tpm.keys_among(&handles)?;
            keys.extend(tpm.recorded_file_keys());
            tpm.prepare_challenges(&keys);
            Ok(keys)
        })
    }

    /// The HMAC keys among `handles` (as [`Tpm::persistent_handles`] lists them), for a caller
    /// that needs both without asking the TPM for the list twice.
    pub fn keys_among(&mut self, handles: &[u32]) -> Result<Vec<KeyInfo>> {
        let mut keys = Vec::new();
        let direct = self.listing_direct();
        for &value in handles {
            let handle = PersistentHandle::new(value)?;
            let object = match direct.then(|| self.direct_object_at(handle)).flatten() {
                Some(object) => object,
                None => self.object_at(handle),
            };
            match object {
                Ok(Object::Hmac(info)) => keys.push(self.labelled(info)),
                // Not an HMAC key (the SRK, an endorsement key, another program's object): not listed.
                Ok(Object::Other { .. }) => {}
                // Deleted between the two calls by another program: not a key any more.
                Err(Error::EmptyHandle { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(keys)
    }
}

impl Tpm {
    /// What is stored at `handle`, read by the direct path (one ReadPublic, the name checked
    /// against the public area's hash and kept as the name the direct path checks), the public
    /// area parsed by tss-esapi as ESYS's would be. `None` when the direct path cannot tell
    /// (no answer, a name algorithm other than SHA-256, an answer that does not parse): ESYS
    /// reads it instead.
    fn direct_object_at(&mut self, handle: PersistentHandle) -> Option<Result<Object>> {
        let (public, name) = match self.on_direct(|direct| direct.public_at(handle.value()))? {
            Ok(read) => read,
            Err(Fallback::Refused(code)) if rc::tpm_code(code) == Some(codes::HANDLE) => {
                self.forget(handle);
                return Some(Err(Error::EmptyHandle { handle }));
            }
            Err(_) => return None,
        };
        // Read exactly as ESYS reads it: the name is the hash of these bytes and nothing else.
        let parsed = Public::unmarshall(&public).ok().filter(|p| p.marshall().ok().as_ref() == Some(&public))?;
        // Another object than this connection knew at the handle: forget what it knew.
        let known = match self.keys.object(handle) {
            Some(object) => self.esys_name(object).ok().and_then(|n| hex::decode(n).ok()),
            None => self.keys.name(handle).map(<[u8]>::to_vec),
        };
        if known.is_some_and(|known| known != name) {
            self.forget(handle);
        }
        self.keys.named(handle, name);
        Some(Ok(describe(handle, &parsed)))
    }
}

fn malformed(text: String) -> Error {
    Error::Wrapper { operation: "listing persistent handles", text }
}
