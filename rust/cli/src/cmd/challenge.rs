//! `tpm-hmac challenge`: the response KeePassXC would get, as lowercase hex.

use keepassxc_tpm::{Error, KeyHandle, Tpm};
use zeroize::Zeroizing;

#[derive(clap::Args)]
pub struct Args {
    /// The key's persistent handle (or its KeePassXC serial)
    #[arg(long, value_parser = super::parse_handle)]
    handle: KeyHandle,
    /// The challenge as hex, 0 to 64 bytes (KeePassXC sends the 32-byte KDF seed)
    #[arg(long, value_name = "HEX", default_value = "")]
    hex: String,
}

pub fn run(tpm: &mut Tpm, args: Args) -> Result<(), Error> {
    let challenge = hex::decode(args.hex.trim())
        .map_err(|e| Error::BadSecret { reason: format!("the challenge is not hex ({e})") })?;
    let response = tpm.challenge(args.handle, &challenge)?;
    let text = Zeroizing::new(hex::encode(&response[..]));
    println!("{}", text.as_str());
    Ok(())
}
