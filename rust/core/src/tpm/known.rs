//! What a connection has learnt about keys: the ESYS handle of each persistent key it resolved,
//! the TPM name the direct path read at each handle, and each key it checked against its record.
//! All go stale together (another program deleted or replaced the key, or the connection was
//! lost), so they are forgotten together.

use std::collections::HashMap;

use tss_esapi::handles::ObjectHandle;

use crate::address::PersistentHandle;
use crate::tpm::pinned::PinnedKey;

#[derive(Default)]
pub(super) struct KnownKeys {
    /// ESYS handles of persistent keys used before, so a warm challenge is one TPM command.
    objects: HashMap<PersistentHandle, ObjectHandle>,
    /// The TPM names of the objects at persistent handles, as the direct path read them (ESYS keeps
    /// its own for the handles it resolved).
    names: HashMap<PersistentHandle, Vec<u8>>,
    /// Keys checked against their metadata records (once per connection and key).
    checked: HashMap<PersistentHandle, PinnedKey>,
}

impl KnownKeys {
    /// The ESYS handle of the key at `handle`, if this connection resolved it.
    pub(super) fn object(&self, handle: PersistentHandle) -> Option<ObjectHandle> {
        self.objects.get(&handle).copied()
    }

    pub(super) fn resolved(&mut self, handle: PersistentHandle, object: ObjectHandle) {
        self.objects.insert(handle, object);
    }

    /// The TPM name the direct path read at `handle`, if it did.
    pub(super) fn name(&self, handle: PersistentHandle) -> Option<&[u8]> {
        self.names.get(&handle).map(Vec::as_slice)
    }

    /// `name` (checked against the public area's hash when it was read) is the TPM name at `handle`.
    pub(super) fn named(&mut self, handle: PersistentHandle, name: Vec<u8>) {
        self.names.insert(handle, name);
    }

    /// The key at `handle` as checked against its record, if it was.
    pub(super) fn checked(&self, handle: PersistentHandle) -> Option<&PinnedKey> {
        self.checked.get(&handle)
    }

    pub(super) fn check_passed(&mut self, handle: PersistentHandle, key: PinnedKey) {
        self.checked.insert(handle, key);
    }

    /// The record of the key at `handle` was rewritten: the next use checks it again.
    pub(super) fn record_changed(&mut self, handle: PersistentHandle) {
        self.checked.remove(&handle);
    }

    /// The key files this connection has loaded.
    pub(super) fn loaded_file_keys(&self) -> Vec<PersistentHandle> {
        self.objects.keys().copied().filter(|h| h.is_file_key()).collect()
    }

    /// Forgets the key at `handle`; its ESYS handle, if any, is the caller's to close.
    pub(super) fn forget(&mut self, handle: PersistentHandle) -> Option<ObjectHandle> {
        self.checked.remove(&handle);
        self.names.remove(&handle);
        self.objects.remove(&handle)
    }

    /// Forgets every key (the connection was replaced: its ESYS handles went with it).
    pub(super) fn clear(&mut self) {
        self.objects.clear();
        self.names.clear();
        self.checked.clear();
    }
}
