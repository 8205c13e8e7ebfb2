//! `tpm-hmac list`: the HMAC keys in the TPM.

use crate::error::CliError;
use crate::output::{self, KeyJson};
use crate::CliWorker;

#[derive(clap::Args)]
pub struct Args {
    /// Print a JSON array (handle, serial, slot, algorithm, …)
    #[arg(long)]
    json: bool,
}

pub fn run(tpm: &CliWorker, args: Args) -> Result<(), CliError> {
    let keys = tpm.run(|tpm| tpm.list_keys())?;
    if args.json {
        out!("{}", output::json(&keys.iter().map(KeyJson::from).collect::<Vec<_>>()));
    } else if keys.is_empty() {
        eprintln!("No HMAC keys in this TPM. Create one with `tpm-hmac create`.");
    } else {
        for key in &keys {
            out!("{}", output::line(key));
        }
    }
    Ok(())
}
