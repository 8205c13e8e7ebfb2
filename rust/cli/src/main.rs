//! `tpm-hmac`: provision and use TPM HMAC keys that KeePassXC uses like a YubiKey
//! challenge-response slot. One file per subcommand under `cmd/`.
#![forbid(unsafe_code)]

mod cmd;
mod output;
mod pin;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keepassxc_tpm::{Error, TpmWorker, DEFAULT_TIMEOUT};

const EXAMPLES: &str = "\
Examples:
  tpm-hmac create                                   generate a key in the TPM (first free handle)
  tpm-hmac import --secret-file yubikey-slot2.hex   program the secret of a YubiKey slot (40 hex digits)
  tpm-hmac list --json                              keys and their KeePassXC addresses
  tpm-hmac challenge --handle 0x81000100 --hex 00112233
  keepassxc-cli open --yubikey 1:2164261120 db.kdbx  use the key at 0x81000100 (= serial 2164261120)

The TPM is found through --tcti, else TPM2TOOLS_TCTI / TCTI / TEST_TCTI, else /dev/tpmrm0, tpm2-abrmd, /dev/tpm0.";

#[derive(Parser)]
#[command(name = "tpm-hmac", version, about = "TPM 2.0 HMAC challenge-response keys for KeePassXC", after_help = EXAMPLES)]
struct Cli {
    /// TPM connection, e.g. device:/dev/tpmrm0, tabrmd:, swtpm:host=127.0.0.1,port=2321
    #[arg(long, global = true, value_name = "CONF")]
    tcti: Option<String>,
    /// Send challenges without the encrypted session (debugging and measurement only: the
    /// response then crosses the bus between TPM and CPU in clear)
    #[arg(long, global = true)]
    no_bus_encryption: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the HMAC keys in the TPM with their KeePassXC addresses
    List(cmd::list::Args),
    /// Program a new challenge-response credential, generated inside the TPM
    Create(cmd::create::Args),
    /// Program a challenge-response credential from a secret you hold (e.g. a YubiKey slot's)
    Import(cmd::import::Args),
    /// Perform a challenge-response operation, as KeePassXC does
    #[command(visible_alias = "calculate")]
    Challenge(cmd::challenge::Args),
    /// Show a key's details
    Info(cmd::info::Args),
    /// Delete a challenge-response credential from the TPM
    Delete(cmd::delete::Args),
}

fn main() -> ExitCode {
    // ESYS prints its own WARNING/ERROR lines on TPM errors; ours say what to do instead.
    if std::env::var_os("TSS2_LOG").is_none() {
        std::env::set_var("TSS2_LOG", "all+none");
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpm-hmac: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command on a TPM worker thread, so a TPM that stops answering ends in an error
/// after DEFAULT_TIMEOUT instead of a hang.
fn run(cli: Cli) -> Result<(), Error> {
    let worker = TpmWorker::start(cli.tcti.clone(), DEFAULT_TIMEOUT);
    worker.run(move |tpm| {
        tpm.set_bus_encryption(!cli.no_bus_encryption);
        match cli.command {
            Command::List(args) => cmd::list::run(tpm, args),
            Command::Create(args) => cmd::create::run(tpm, args),
            Command::Import(args) => cmd::import::run(tpm, args),
            Command::Challenge(args) => cmd::challenge::run(tpm, args),
            Command::Info(args) => cmd::info::run(tpm, args),
            Command::Delete(args) => cmd::delete::run(tpm, args),
        }
    })
}
