//! `tpm-hmac.exe`: the Windows build. Keys are kept in TSS2 PRIVATE KEY files (Windows does not let
//! a standard user make persistent keys) with their records in `%LOCALAPPDATA%\keepassxc-tpm\`,
//! and reached through Windows' TPM Base Services. One file per subcommand; the answers are the
//! Linux build's, byte for byte.

mod challenge;
mod create;
mod delete;
mod doctor;
mod info;
mod label;
mod list;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keepassxc_tpm::{KeyFileTpm, Metadata};

use crate::error::CliError;

const EXAMPLES: &str = "\
Examples:
  tpm-hmac create --key-file laptop.tss              generate a key in the TPM, kept in a key file
  tpm-hmac import --key-file twin.tss --secret-file slot2.hex   a YubiKey slot's secret (40 hex digits)
  tpm-hmac challenge --key-file laptop.tss --hex 00112233
  tpm-hmac doctor --probe-commands                   which TPM commands Windows lets you send";

#[derive(Parser)]
#[command(
    name = "tpm-hmac",
    version,
    about = "TPM 2.0 HMAC challenge-response keys for KeePass databases (Windows: key files through TBS)",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the key files your record file holds
    List(list::Args),
    /// Program a new challenge-response credential, generated inside the TPM, in a key file
    Create(create::Args),
    /// Program a challenge-response credential from a secret you hold (e.g. a YubiKey slot's)
    Import(create::ImportArgs),
    /// Perform a challenge-response operation, as KeePassXC does
    #[command(visible_alias = "calculate")]
    Challenge(challenge::Args),
    /// Show a key's details
    Info(info::Args),
    /// Delete a key: its key file and its record
    Delete(delete::Args),
    /// Name a key (shown by `list`)
    Label(label::Args),
    /// Check the TPM and what Windows lets you do with it
    Doctor(doctor::Args),
}

/// The key file a command works on.
#[derive(clap::Args)]
pub struct Target {
    /// The key's TSS2 PRIVATE KEY file (made with `create --key-file` or `import --key-file`)
    #[arg(long, value_name = "PATH")]
    key_file: PathBuf,
}

pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpm-hmac: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::List(args) => list::run(args),
        Command::Create(args) => create::run(args),
        Command::Import(args) => create::import(args),
        Command::Challenge(args) => challenge::run(args),
        Command::Info(args) => info::run(args),
        Command::Delete(args) => delete::run(args),
        Command::Label(args) => label::run(args),
        Command::Doctor(args) => doctor::run(args),
    }
}

/// The record file (`%LOCALAPPDATA%\keepassxc-tpm\keys.json`, or `KEEPASSXC_TPM_METADATA`).
fn records() -> Metadata {
    Metadata::default_location()
}

/// The TPM through TBS, with the user's record file.
fn open() -> Result<KeyFileTpm, CliError> {
    Ok(KeyFileTpm::open(records())?)
}
