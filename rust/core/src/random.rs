//! Random bytes from the operating system (getrandom): the one source of every generated secret,
//! session nonce and salt, and temporary file name. A failure is said as what it is.

use rand_core::{OsRng, RngCore};

use crate::error::{Error, Result};

/// Fills `bytes` from the operating system's random generator.
pub(crate) fn fill(bytes: &mut [u8]) -> Result<()> {
    OsRng.try_fill_bytes(bytes).map_err(|e| Error::NoRandomness { detail: e.to_string() })
}
