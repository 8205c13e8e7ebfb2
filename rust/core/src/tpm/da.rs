//! The TPM's dictionary-attack state, to tell a user how many PIN tries are left and how long a
//! lockout lasts.
//!
//! Reading the dictionary-attack counters: its types first, then the `impl Tpm` that uses them.

use crate::error::Result;
use tss_esapi::constants::PropertyTag;

use super::Tpm;

/// The TPM's dictionary-attack counters and settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DaStatus {
    /// Failures counted now.
    pub failures: u32,
    /// Failures allowed before lockout.
    pub max_failures: u32,
    /// Seconds after which one failure is forgotten.
    pub interval_seconds: u32,
    /// Seconds after a failed use of the lockout authorisation before it may be tried again.
    pub lockout_recovery_seconds: u32,
    /// The TPM refuses keys that count failures until the counter drops below the maximum.
    pub locked_out: bool,
}

impl DaStatus {
    /// Wrong PINs the TPM still accepts before it locks out.
    pub fn tries_left(&self) -> u32 {
        self.max_failures.saturating_sub(self.failures)
    }
}

/// TPMA_PERMANENT.inLockout (TPM 2.0 Part 2, 8.6).
const IN_LOCKOUT: u32 = 1 << 9;

impl Tpm {
    /// Reads the dictionary-attack counters (one GetCapability, not cached: they change).
    pub fn da_status(&mut self) -> Result<DaStatus> {
        let first = PropertyTag::Permanent;
        let count = u32::from(PropertyTag::LockoutRecovery) - u32::from(first) + 1;
        let found = self.properties(first, count)?;
        let value = |tag| found.get(&tag).copied().unwrap_or(0);
        Ok(DaStatus {
            failures: value(PropertyTag::LockoutCounter),
            max_failures: value(PropertyTag::MaxAuthFail),
            interval_seconds: value(PropertyTag::LockoutInterval),
            lockout_recovery_seconds: value(PropertyTag::LockoutRecovery),
            locked_out: value(PropertyTag::Permanent) & IN_LOCKOUT != 0,
        })
    }
}
