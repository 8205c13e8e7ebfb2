//! `tpm-hmac delete`: remove an HMAC key from the TPM (only HMAC keys; never the SRK), or a key
//! file and its record.

use crate::error::CliError;
use crate::CliWorker;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: super::Target,
}

pub fn run(tpm: &CliWorker, args: Args) -> Result<(), CliError> {
    let handle = args.key.handle(tpm)?;
    if handle.is_file_key() {
        let left = tpm.run(move |tpm| tpm.delete_file_key(handle))?;
        eprintln!("Deleted the key file {handle}. Databases protected only by it can no longer be opened with it.");
        if let Some(path) = left {
            eprintln!(
                "tpm-hmac: warning: {} was left in place (it could not be removed, or it is not the key file the \
                 record described); the key's record is gone: look at the file and delete it by hand if it is the key",
                path.display()
            );
        }
        return Ok(());
    }
    let record_left = tpm.run(move |tpm| tpm.delete_key(handle))?;
    eprintln!("Deleted the key at {handle}. Databases protected only by it can no longer be opened with it.");
    if let Some(e) = record_left {
        eprintln!("tpm-hmac: warning: the key's record could not be removed: {}", e.explained());
    }
    Ok(())
}
