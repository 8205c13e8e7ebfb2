//! `tpm-hmac list`: the key files the record file holds, one line each (or JSON), with where each
//! file is. No TPM command: each key is checked against the TPM when it is used.

use crate::error::CliError;
use crate::output::{self, KeyJson};

#[derive(clap::Args)]
pub struct Args {
    /// Print the keys as a JSON array
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let keys = keepassxc_tpm::KeyFileTpm::list_in(&super::records())?;
    if args.json {
        out!("{}", output::json(&keys.iter().map(|(key, _)| KeyJson::from(key)).collect::<Vec<_>>()));
        return Ok(());
    }
    if keys.is_empty() {
        eprintln!(
            "No key files recorded in {}.",
            super::records().path().map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
    for (key, path) in &keys {
        let path = path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        out!("{}  {path}", output::line(key));
    }
    Ok(())
}
