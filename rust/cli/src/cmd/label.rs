//! `tpm-hmac label`: name a key (or, with `--clear`, remove its name), as `list` and KeePassXC show it.

use crate::error::CliError;
use crate::CliWorker;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: super::Target,
    /// The new name (at most 32 characters, no brackets)
    #[arg(required_unless_present = "clear", conflicts_with = "clear")]
    name: Option<String>,
    /// Remove the key's name
    #[arg(long)]
    clear: bool,
}

pub fn run(tpm: &CliWorker, args: Args) -> Result<(), CliError> {
    let label = args.name.as_deref().map(keepassxc_tpm::check_label).transpose()?;
    let handle = args.key.handle(tpm)?;
    let key = tpm.run(move |tpm| tpm.set_label(handle, label.as_deref()))?;
    eprintln!("{}: {}", key.handle, key.display_name());
    Ok(())
}
