//! TPM 2.0 HMAC keys that answer KeePassXC's challenges exactly as a YubiKey
//! challenge-response slot does.
//!
//! An HMAC key is created inside the TPM (or imported from a secret the user keeps), persisted
//! at a handle, and addressed by KeePassXC as `serial = handle, slot = 1`. A key without a PIN
//! has the empty policy and is used only through a policy session, whose failures the TPM never
//! counts toward its dictionary-attack lockout ([`KeyInfo::empty_policy`]). A challenge is
//! padded and trimmed as a YubiKey slot would ([`yubikey_message`]) and hashed by TPM2_HMAC in
//! the chip; the key never leaves it.
//!
//! # Code structure
//! What front ends use is re-exported here at the crate root; of the modules only [`tpm`],
//! [`metadata`], [`cards`], [`os`], [`pcr`] and [`recovery`] are public, for their helper functions.
//! - `tcti`: where the TPM is ([`Tcti`]): a TCTI string parsed once; the environment, the default
//!   search, whether a resource manager flushes on close, the module's Debian package.
//! - [`tpm`]: the [`Tpm`] connection: opening the TPM from a [`Tcti`] with [`TpmOptions`] (settings
//!   given at open, for the connection's life); retries. One child module per topic holds that
//!   topic's types and the `impl Tpm` that uses them, so the connection's fields stay private:
//!   `session.rs` (the encrypting sessions), `pinned.rs` (checking keys against their records),
//!   `parent.rs` (the storage parent: SRK, else an ECC primary), `pcr.rs` (PolicyPCR, and
//!   PolicyAuthValue with a PIN), `da.rs` (the dictionary-attack counters, for "2 tries left"),
//!   `inventory.rs` (what the TPM says about itself), `keys.rs` (creating, importing, persisting
//!   and deleting keys), `listing.rs` ([`Tpm::list_keys`]), `challenge.rs`, and `known.rs` (what a
//!   connection learnt about keys).
//! - `address`: persistent handles and KeePassXC's (serial, slot) address.
//! - `key`: HMAC key templates and types, and what sits at a handle. `algorithm`: [`Algorithm`],
//!   HMAC-SHA1 or HMAC-SHA256.
//! - `challenge`: KeePassXC's challenge → the YubiKey message (its `impl Tpm` is
//!   `tpm/challenge.rs`: TPM2_HMAC in an encrypted session salted with the storage key, so the
//!   response never crosses the bus in clear).
//! - `direct`: the same challenge for keys without PIN or PCR policy in two TPM commands (one with
//!   a kept session; a ReadPublic before a connection's first challenge of a key checks its name,
//!   and before every challenge of a key whose authorisation the TPM could count),
//!   the salted session computed in Rust from the key's pinned record; any doubt falls back to the
//!   ESYS path. Its transport and parser also list the keys (`tpm/listing.rs`: GetCapability,
//!   then one ReadPublic per handle, the names kept for the challenges' check); behind a resource
//!   manager, listing also starts the kept session, so the challenge after it is the HMAC alone.
//! - [`metadata`]: the record file pinning each key's public area and storage key (and PCR
//!   binding), opened with a trust policy (a user's own, or root's read by a service).
//! - [`cards`]: the PC/SC driver's file (a record file read as root's): which keys are served as
//!   YubiKey-style cards, and why others are not.
//! - `secret`: secrets to import (hex as ykman shows it, or a recovery code). `random`: the
//!   operating system's random generator, the one source of secrets, nonces and file names.
//! - [`recovery`]: the recovery code format (Crockford base32 with a checksum).
//! - [`os`]: what /etc/passwd and /etc/group say (user and group names, home directories) and
//!   where a user's record file is by default.
//! - `worker`: a connection on its own thread, with a timeout (tpm2-tss has none).
//! - `error`: one error type; TSS return codes kept as 0x%08X; `Display` says what happened, and
//!   [`Error::hint`] the kind of remedy ([`Hint`]), which each front end says in its own words.
//!
//! # Notes on code safety
//! This crate has no `unsafe` code (`#![forbid(unsafe_code)]`); all FFI is inside tss-esapi.
//! Secrets and responses are held in `Zeroizing` buffers, and no error or log message ever
//! contains them. Every transient object loaded into the TPM is flushed on every path,
//! because a TPM without a resource manager has only a few transient slots.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod address;
mod algorithm;
#[cfg(unix)]
pub mod cards;
mod challenge;
// On Windows only key files use the direct path: listing and kept sessions serve Linux's paths.
#[cfg_attr(windows, allow(dead_code))]
mod direct;
mod error;
mod file_records;
mod key;
pub mod keyfile;
mod keyfile_tpm;
pub mod metadata;
#[cfg(unix)]
mod options;
#[cfg(unix)]
pub mod os;
mod private_file;
mod random;
// The ESYS path reads most of its codes; the direct path (all Windows has) only classifies them.
#[cfg_attr(windows, allow(dead_code))]
mod rc;
pub mod recovery;
mod secret;
#[cfg(unix)]
mod tcti;
#[cfg(unix)]
pub mod tpm;
#[cfg(unix)]
mod worker;

pub use address::{BadHandle, PersistentHandle, PROJECT_RANGE, SLOT, SRK_HANDLE};
pub use challenge::{yubikey_message, ChallengeRule, SlotMode};
pub use error::{Error, ErrorKind, Hint, Result};
pub use key::{check_label, Algorithm, KeyInfo, KeySpec, KeySummary, Origin, MAX_LABEL};
pub use keyfile_tpm::KeyFileTpm;
pub use metadata::{KeyRecord, Metadata, MetadataLock};
#[cfg(unix)]
pub use options::TpmOptions;
pub use secret::{Pin, Secret};
#[cfg(unix)]
pub use tcti::{Tcti, TCTI_ENV_VARS};
#[cfg(unix)]
pub use tpm::da::DaStatus;
#[cfg(unix)]
pub use tpm::inventory::{SrkState, TpmFacts};
#[cfg(unix)]
pub use tpm::pcr;
#[cfg(unix)]
pub use tpm::Tpm;
#[cfg(unix)]
pub use worker::{TpmWorker, DEFAULT_TIMEOUT};
