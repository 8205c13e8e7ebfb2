//! `tpm-hmac import`: store an HMAC secret the user holds (e.g. a YubiKey slot's) in the TPM.

use std::io::Read;

use keepassxc_tpm::{Error, Secret, Tpm};
use zeroize::Zeroizing;

use super::create::{report, KeyArgs};

#[derive(clap::Args)]
pub struct Args {
    /// File holding the secret: hex (40 hex digits for HMAC-SHA1, as ykman shows it) or the
    /// recovery code `create --recovery` showed; - reads stdin
    #[arg(long, value_name = "FILE")]
    secret_file: std::path::PathBuf,
    #[command(flatten)]
    key: KeyArgs,
}

pub fn run(tpm: &mut Tpm, args: Args) -> Result<(), Error> {
    let secret = read_secret(&args.secret_file)?;
    let key = tpm.import_key(&args.key.spec()?, &secret)?;
    report(&key, args.key.json);
    Ok(())
}

fn read_secret(path: &std::path::Path) -> Result<Secret, Error> {
    let mut text = Zeroizing::new(String::new());
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| Error::BadSecret { reason: format!("cannot read {}: {e}", path.display()) })?;
    Secret::parse(&text)
}
