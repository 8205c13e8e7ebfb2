//! `tpm-hmac challenge`: the response KeePassXC would get, as lowercase hex.

use zeroize::Zeroizing;

use crate::error::CliError;
use crate::input;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: super::Target,
    /// The challenge as hex, 0 to 64 bytes (KeePassXC sends the 32-byte KDF seed)
    #[arg(long, value_name = "HEX", default_value = "")]
    hex: String,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let challenge = input::parse_hex(&args.hex, "the challenge")?;
    let response = super::open()?.challenge(&args.key.key_file, &challenge)?;
    let text = Zeroizing::new(hex::encode(&response[..]));
    out!("{}", text.as_str());
    Ok(())
}
