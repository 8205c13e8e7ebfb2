//! Listing the HMAC keys in the TPM's persistent storage, with their KeePassXC addresses.
//!
//! The listing is [`Tpm::list_keys`](crate::Tpm::list_keys) and
//! [`Tpm::persistent_handles`](crate::Tpm::persistent_handles), in `tpm/store.rs`.
