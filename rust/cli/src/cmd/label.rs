//! `tpm-hmac label`: name a key (or, with `--clear`, remove its name), as `list` and KeePassXC show it.

use keepassxc_tpm::PersistentHandle;

use crate::error::CliError;
use crate::CliWorker;

#[derive(clap::Args)]
pub struct Args {
    /// The key's persistent handle (or its KeePassXC serial)
    #[arg(long, value_parser = super::parse_handle)]
    handle: PersistentHandle,
    /// The new name (at most 32 characters, no brackets)
    #[arg(required_unless_present = "clear", conflicts_with = "clear")]
    name: Option<String>,
    /// Remove the key's name
    #[arg(long)]
    clear: bool,
}

pub fn run(tpm: &CliWorker, args: Args) -> Result<(), CliError> {
    let label = args.name.as_deref().map(keepassxc_tpm::check_label).transpose()?;
    let handle = args.handle;
    let key = tpm.run(move |tpm| tpm.set_label(handle, label.as_deref()))?;
    eprintln!("{}: {}", key.handle, key.display_name());
    Ok(())
}
