//! Reading the dictionary-attack counters (the `impl Tpm` of [`crate::da`]).

use crate::da::DaStatus;
use crate::error::Result;
use tss_esapi::constants::PropertyTag;

use super::Tpm;

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
