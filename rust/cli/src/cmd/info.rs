//! `tpm-hmac info`: one key's details.

use crate::error::CliError;
use crate::output::{self, KeyJson};
use crate::CliWorker;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: super::Target,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn run(tpm: &CliWorker, args: Args) -> Result<(), CliError> {
    let handle = args.key.handle(tpm)?;
    let (key, record) = tpm.run(move |tpm| Ok((tpm.key_info(handle)?, tpm.metadata().get(handle).ok().flatten())))?;
    if args.json {
        out!("{}", output::json(&KeyJson::from(&key)));
        return Ok(());
    }
    out!("Handle:        {}", key.handle);
    if let Some(label) = &key.label {
        out!("Label:         {label}");
    }
    out!("Algorithm:     {}", key.algorithm);
    out!("Origin:        {:?}", key.origin);
    out!("KeePassXC:     serial {} slot {} (--yubikey {})", key.serial(), key.slot(), output::keepassxc_address(&key));
    out!("Display name:  {}", key.display_name());
    out!("Attributes:    fixedTPM={} fixedParent={} noDA={}", key.fixed_tpm, key.fixed_parent, key.no_da);
    if let Some(record) = &record {
        out!("YubiKey twin:  a slot for {}", record.yubikey_mode);
    }
    if key.policy_bound {
        out!("Bound to:      the boot state (PCR policy); it answers only while the PCRs keep their values");
    }
    Ok(())
}
