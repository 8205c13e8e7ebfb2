//! `tpm-hmac challenge`: the response KeePassXC would get, as lowercase hex.

use keepassxc_tpm::Error;
use zeroize::Zeroizing;

use crate::error::CliError;
use crate::{input, pin, CliWorker};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: super::Target,
    /// The challenge as hex, 0 to 64 bytes (KeePassXC sends the 32-byte KDF seed)
    #[arg(long, value_name = "HEX", default_value = "")]
    hex: String,
    /// For a key with a PIN: read it from FILE instead of asking on the terminal
    #[arg(long, value_name = "FILE")]
    pin_file: Option<std::path::PathBuf>,
}

pub fn run(tpm: &CliWorker, args: Args) -> Result<(), CliError> {
    let handle = args.key.handle(tpm)?;
    let challenge = input::parse_hex(&args.hex, "the challenge")?;
    let pin = args.pin_file.as_deref().map(|file| pin::read(Some(file), "")).transpose()?;
    let given = pin.is_some();
    let first = challenge.clone();
    let response = match tpm.run(move |tpm| tpm.challenge_with_pin(handle, &first, pin.as_ref())) {
        // Asked for only now, between two TPM operations: the typing is not under the timeout.
        Err(CliError::Tpm(Error::PinRequired { .. })) if !given => {
            let pin = pin::read(None, &format!("PIN for the TPM key {handle}: "))?;
            tpm.run(move |tpm| tpm.challenge_with_pin(handle, &challenge, Some(&pin)))?
        }
        other => other?,
    };
    let text = Zeroizing::new(hex::encode(&response[..]));
    out!("{}", text.as_str());
    Ok(())
}
