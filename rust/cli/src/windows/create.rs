//! `tpm-hmac create` and `import`: a new key in a key file, generated inside the TPM or from a
//! secret the user holds.

use std::path::PathBuf;

use keepassxc_tpm::{Algorithm, KeyInfo, KeySpec, Secret, SlotMode};

use crate::error::CliError;
use crate::input;
use crate::output::{self, KeyJson};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: KeyArgs,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// File holding the secret: hex (40 hex digits for HMAC-SHA1, as ykman shows it) or a
    /// recovery code; - reads stdin
    #[arg(long, value_name = "FILE")]
    secret_file: PathBuf,
    #[command(flatten)]
    key: KeyArgs,
}

/// What `create` and `import` share.
#[derive(clap::Args)]
struct KeyArgs {
    /// The new TSS2 PRIVATE KEY file to keep the key in (it must not exist)
    #[arg(long, value_name = "PATH")]
    key_file: PathBuf,
    /// HMAC hash: sha1 (20-byte responses, what KeePassXC and YubiKeys use) or sha256
    #[arg(long, default_value = "sha1")]
    algorithm: Algorithm,
    /// The kind of YubiKey slot to be a twin of: variable or fixed
    #[arg(long, value_name = "MODE", default_value = "variable")]
    yubikey_mode: SlotMode,
    /// A name for the key, shown by `list` (at most 32 characters, no brackets)
    #[arg(long, value_name = "NAME")]
    label: Option<String>,
    /// Print the new key as JSON
    #[arg(long)]
    json: bool,
}

impl KeyArgs {
    fn spec(&self) -> KeySpec {
        KeySpec {
            algorithm: self.algorithm,
            yubikey_mode: self.yubikey_mode,
            label: self.label.clone(),
            ..KeySpec::default()
        }
    }
}

pub fn run(args: Args) -> Result<(), CliError> {
    let key = super::open()?.create(&args.key.spec(), None, &args.key.key_file)?;
    report(&key, args.key.json);
    Ok(())
}

pub fn import(args: ImportArgs) -> Result<(), CliError> {
    let text = input::read_text(&args.secret_file, "the secret file")?;
    let secret = Secret::parse(&text)?;
    let key = super::open()?.create(&args.key.spec(), Some(&secret), &args.key.key_file)?;
    report(&key, args.key.json);
    Ok(())
}

fn report(key: &KeyInfo, json: bool) {
    if json {
        out!("{}", output::json(&KeyJson::from(key)));
    } else {
        out!("{}", key.handle);
    }
}
