//! The TPM's dictionary-attack state, to tell a user how many PIN tries are left and how long a
//! lockout lasts.

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
