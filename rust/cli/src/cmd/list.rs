//! `tpm-hmac list`: the HMAC keys in the TPM.

use keepassxc_tpm::{Error, Tpm};

use crate::output::{self, KeyJson};

#[derive(clap::Args)]
pub struct Args {
    /// Print a JSON array (handle, serial, slot, algorithm, …)
    #[arg(long)]
    json: bool,
}

pub fn run(tpm: &mut Tpm, args: Args) -> Result<(), Error> {
    let keys = tpm.list_keys()?;
    if args.json {
        println!("{}", output::json(&keys.iter().map(KeyJson::from).collect::<Vec<_>>()));
    } else if keys.is_empty() {
        eprintln!("No HMAC keys in this TPM. Create one with `tpm-hmac create`.");
    } else {
        for key in &keys {
            println!("{}", output::line(key));
        }
    }
    Ok(())
}
