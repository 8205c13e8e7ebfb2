//! `tpm-hmac info`: a key's details, from its record (no TPM command).

use crate::error::CliError;
use crate::output::{self, KeyJson};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: super::Target,
    /// Print the key as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let (_, record, key) = keepassxc_tpm::KeyFileTpm::key_in(&super::records(), &args.key.key_file)?;
    if args.json {
        out!("{}", output::json(&KeyJson::from(&key)));
        return Ok(());
    }
    out!("Serial:        {}", key.handle);
    if let Some(label) = &key.label {
        out!("Label:         {label}");
    }
    out!("Key file:      {}", args.key.key_file.display());
    out!("Algorithm:     {}", key.algorithm);
    out!("Origin:        {:?}", key.origin);
    out!("Attributes:    fixedTPM={} fixedParent={} noDA={}", key.fixed_tpm, key.fixed_parent, key.no_da);
    out!("YubiKey twin:  a slot for {}", record.yubikey_mode);
    Ok(())
}
