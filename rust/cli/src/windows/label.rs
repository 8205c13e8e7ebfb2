//! `tpm-hmac label`: name a key, or with `--clear` remove its name.

use crate::error::CliError;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: super::Target,
    /// The name (at most 32 characters, no brackets)
    #[arg(required_unless_present = "clear")]
    label: Option<String>,
    /// Remove the key's name
    #[arg(long, conflicts_with = "label")]
    clear: bool,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let key = keepassxc_tpm::KeyFileTpm::label_in(&super::records(), &args.key.key_file, args.label.as_deref())?;
    out!("{}", crate::output::line(&key));
    Ok(())
}
