//! `tpm-hmac import`: store an HMAC secret the user holds (e.g. a YubiKey slot's) in the TPM.

use keepassxc_tpm::Secret;

use super::create::{report, KeyArgs};
use crate::error::CliError;
use crate::{input, CliWorker};

#[derive(clap::Args)]
pub struct Args {
    /// File holding the secret: hex (40 hex digits for HMAC-SHA1, as ykman shows it) or the
    /// recovery code `create --recovery` showed; - reads stdin
    #[arg(long, value_name = "FILE")]
    secret_file: std::path::PathBuf,
    #[command(flatten)]
    key: KeyArgs,
}

pub fn run(tpm: &CliWorker, args: Args) -> Result<(), CliError> {
    let text = input::read_text(&args.secret_file, "the secret file")?;
    let secret = Secret::parse(&text)?;
    let spec = args.key.spec()?;
    let file = args.key.key_file.clone();
    let key = tpm.run(move |tpm| match &file {
        Some(path) => tpm.import_file_key(&spec, &secret, path),
        None => tpm.import_key(&spec, &secret),
    })?;
    report(&key, args.key.json);
    Ok(())
}
