//! `tpm-hmac delete`: remove an HMAC key from the TPM (only HMAC keys; never the SRK).

use keepassxc_tpm::PersistentHandle;

use crate::error::CliError;
use crate::CliWorker;

#[derive(clap::Args)]
pub struct Args {
    /// The key's persistent handle (or its KeePassXC serial)
    #[arg(long, value_parser = super::parse_handle)]
    handle: PersistentHandle,
}

pub fn run(tpm: &CliWorker, args: Args) -> Result<(), CliError> {
    let handle = args.handle;
    let record_left = tpm.run(move |tpm| tpm.delete_key(handle))?;
    eprintln!("Deleted the key at {handle}. Databases protected only by it can no longer be opened with it.");
    if let Some(e) = record_left {
        eprintln!("tpm-hmac: warning: the key's record could not be removed: {}", e.explained());
    }
    Ok(())
}
