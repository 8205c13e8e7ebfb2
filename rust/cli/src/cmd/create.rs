//! `tpm-hmac create`: generate an HMAC key inside the TPM.

use keepassxc_tpm::{Algorithm, Error, KeyHandle, KeyInfo, KeySpec, Tpm};

use crate::output::{self, KeyJson};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub key: KeyArgs,
}

/// What `create` and `import` share.
#[derive(clap::Args)]
pub struct KeyArgs {
    /// Persistent handle to store the key at (default: first free of 0x81000100-0x810001ff)
    #[arg(long, value_parser = super::parse_handle)]
    pub handle: Option<KeyHandle>,
    /// HMAC hash: sha1 (20-byte responses, what KeePassXC and YubiKeys use) or sha256
    #[arg(long, default_value = "sha1")]
    pub algorithm: Algorithm,
    /// Print the new key as JSON
    #[arg(long)]
    pub json: bool,
}

impl KeyArgs {
    pub fn spec(&self) -> KeySpec {
        KeySpec { handle: self.handle, algorithm: self.algorithm }
    }
}

pub fn run(tpm: &mut Tpm, args: Args) -> Result<(), Error> {
    let key = tpm.create_key(&args.key.spec())?;
    eprintln!(
        "warning: this key was generated inside the TPM and cannot be backed up; a database protected \
         by it alone opens only on this computer. Keep a second factor (e.g. a YubiKey twin made with \
         `tpm-hmac import`) or your database's other credentials safe."
    );
    report(&key, args.key.json);
    Ok(())
}

/// Prints a new key: its handle, or the JSON object `list --json` prints.
pub fn report(key: &KeyInfo, json: bool) {
    if json {
        println!("{}", output::json(&KeyJson::from(key)));
    } else {
        println!("{}", key.handle);
        eprintln!("Use it in keepassxc-cli with --yubikey {}", output::keepassxc_address(key));
    }
}
