//! `tpm-hmac info`: one key's details.

use keepassxc_tpm::PersistentHandle;

use crate::error::CliError;
use crate::output::{self, KeyJson};
use crate::CliWorker;

#[derive(clap::Args)]
pub struct Args {
    /// The key's persistent handle (or its KeePassXC serial)
    #[arg(long, value_parser = super::parse_handle)]
    handle: PersistentHandle,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn run(tpm: &CliWorker, args: Args) -> Result<(), CliError> {
    let handle = args.handle;
    let (key, record) = tpm.run(move |tpm| Ok((tpm.key_info(handle)?, tpm.metadata().get(handle).ok().flatten())))?;
    if args.json {
        println!("{}", output::json(&KeyJson::from(&key)));
        return Ok(());
    }
    println!("Handle:        {}", key.handle);
    if let Some(label) = &key.label {
        println!("Label:         {label}");
    }
    println!("Algorithm:     {}", key.algorithm);
    println!("Origin:        {:?}", key.origin);
    println!(
        "KeePassXC:     serial {} slot {} (--yubikey {})",
        key.serial(),
        key.slot(),
        output::keepassxc_address(&key)
    );
    println!("Display name:  {}", key.display_name());
    println!("Attributes:    fixedTPM={} fixedParent={} noDA={}", key.fixed_tpm, key.fixed_parent, key.no_da);
    if let Some(record) = &record {
        println!("YubiKey twin:  a slot for {}", record.yubikey_mode);
    }
    if key.policy_bound {
        println!("Bound to:      the boot state (PCR policy); it answers only while the PCRs keep their values");
    }
    Ok(())
}
