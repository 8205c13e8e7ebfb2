//! `tpm-hmac delete`: remove an HMAC key from the TPM (only HMAC keys; never the SRK).

use keepassxc_tpm::{Error, KeyHandle, Tpm};

#[derive(clap::Args)]
pub struct Args {
    /// The key's persistent handle (or its KeePassXC serial)
    #[arg(long, value_parser = super::parse_handle)]
    handle: KeyHandle,
}

pub fn run(tpm: &mut Tpm, args: Args) -> Result<(), Error> {
    tpm.delete_key(args.handle)?;
    eprintln!("Deleted the key at {}. Databases protected only by it can no longer be opened with it.", args.handle);
    Ok(())
}
