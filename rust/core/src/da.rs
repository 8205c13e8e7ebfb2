//! The TPM's dictionary-attack state, to tell a user how many PIN tries are left and how long a
//! lockout lasts.

use tss_esapi::constants::CapabilityType;
use tss_esapi::structures::CapabilityData;

use crate::error::Result;
use crate::tpm::Tpm;

/// TPM_PT_LOCKOUT_COUNTER; MAX_AUTH_FAIL, LOCKOUT_INTERVAL and LOCKOUT_RECOVERY follow it.
const PT_LOCKOUT_COUNTER: u32 = 0x20E;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DaStatus {
    /// Failures counted now.
    pub failures: u32,
    /// Failures allowed before lockout.
    pub max_failures: u32,
    /// Seconds after which one failure is forgotten.
    pub interval_seconds: u32,
}

impl DaStatus {
    pub fn tries_left(&self) -> u32 {
        self.max_failures.saturating_sub(self.failures)
    }
}

impl Tpm {
    /// Reads the dictionary-attack counters (one GetCapability, not cached: they change).
    pub fn da_status(&mut self) -> Result<DaStatus> {
        let (data, _) = self.run("reading the lockout counters", |ctx| {
            ctx.get_capability(CapabilityType::TpmProperties, PT_LOCKOUT_COUNTER, 4)
        })?;
        let mut status = DaStatus::default();
        if let CapabilityData::TpmProperties(list) = data {
            for p in list.iter() {
                match u32::from(p.property()) {
                    0x20E => status.failures = p.value(),
                    0x20F => status.max_failures = p.value(),
                    0x210 => status.interval_seconds = p.value(),
                    _ => {}
                }
            }
        }
        Ok(status)
    }
}
