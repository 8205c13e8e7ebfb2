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
    /// For a key with a PIN: read it from FILE instead of asking on the terminal
    #[arg(long, value_name = "FILE")]
    pin_file: Option<std::path::PathBuf>,
}

pub fn run(tpm: &mut Tpm, args: Args) -> Result<(), Error> {
    let challenge = hex::decode(args.hex.trim())
        .map_err(|e| Error::BadSecret { reason: format!("the challenge is not hex ({e})") })?;
    let response = match tpm.challenge(args.handle, &challenge) {
        Err(Error::PinRequired { .. }) => {
            let pin = crate::pin::read(args.pin_file.as_deref(), &format!("PIN for the TPM key {}: ", args.handle))?;
            tpm.challenge_with_pin(args.handle, &challenge, Some(&pin))?
        }
        other => other?,
    };
    let text = Zeroizing::new(hex::encode(&response[..]));
    println!("{}", text.as_str());
    Ok(())
}
