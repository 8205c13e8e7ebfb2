//! A pcsc-lite reader driver (an IFD handler, as libccid and vsmartcard's vpcd are) that presents
//! each TPM HMAC key root has enabled as a YubiKey challenge-response card, so stock KeePassXC
//! (2.7 and later, over PC/SC) and yubikit use the key with no fork.
//!
//! # Code structure
//! - [`apdu`]: the YubiKey OTP applet as pure logic (APDU in, APDU out; the HMAC is the caller's),
//!   the crate `keepassxc-tpm-apdu`.
//! - [`config`]: the driver's view of the root-owned file of enabled keys (its path and a stamp to
//!   notice changes); the core reads and checks it ([`keepassxc_tpm::cards`]: a record file with
//!   the TCTI, read as root's file for a service) and says which records become cards.
//! - `backend`: the challenges: a TPM worker kept for hours (the driver's file as its records),
//!   timeouts, and TPM failures sorted into "try again" and "not served".
//! - [`reader`]: a reader's slots (one card per served key), the file re-read when it changes.
//! - [`ifd`]: the `extern "C"` entry points pcscd calls (ifdhandler.h, version 3); the only unsafe
//!   code, each entry catching panics.
//!
//! # What the card says
//! SELECT of the OTP AID answers the OTP status block with protocol level 3.0.0 as its version
//! (HMAC-SHA1 challenge-response over CCID, as yubikit requires; see [`apdu::PROTOCOL_VERSION`]);
//! the ATR and the reader's name say it is a TPM key. The serial is the key's KeePassXC serial (its
//! persistent handle), so a database made with the KeePassXC fork opens through PC/SC and back.
//!
//! # Notes on code safety
//! Secrets never pass through here (the key stays in the TPM); challenges and responses are held in
//! `Zeroizing` buffers and never logged. Log lines go to stderr, which is pcscd's log.
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// The YubiKey OTP applet as pure logic (its own crate, which the fuzz target builds alone).
pub use keepassxc_tpm_apdu as apdu;
mod backend;
pub mod config;
#[allow(unsafe_code)]
pub mod ifd;
mod log;
pub mod reader;

pub use backend::{Backend, NoResponse};
pub use reader::Reader;
