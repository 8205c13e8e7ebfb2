//! `tpm-hmac`: provision and use TPM HMAC keys that KeePassXC uses like a YubiKey
//! challenge-response slot. One file per subcommand under `cmd/` (Linux) and `windows/`
//! (`tpm-hmac.exe`: key files through Windows' TPM Base Services).
#![forbid(unsafe_code)]

/// `println!` for the CLI's output: a reader that closed the pipe (`tpm-hmac list | head -1`,
/// `grep -q`) ends the program quietly, as a killed-by-SIGPIPE one would (exit status 141),
/// instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}

#[cfg(unix)]
mod cmd;
mod error;
mod input;
mod output;
#[cfg(unix)]
mod pin;
#[cfg(windows)]
mod windows;

use std::process::ExitCode;

#[cfg(unix)]
use clap::{Parser, Subcommand};
#[cfg(unix)]
use keepassxc_tpm::{Tpm, TpmOptions, TpmWorker, DEFAULT_TIMEOUT};

#[cfg(unix)]
use crate::error::CliError;

#[cfg(windows)]
fn main() -> ExitCode {
    windows::main()
}

#[cfg(unix)]
const EXAMPLES: &str = "\
Examples:
  tpm-hmac create                                   generate a key in the TPM (first free handle)
  tpm-hmac import --secret-file yubikey-slot2.hex   program the secret of a YubiKey slot (40 hex digits)
  tpm-hmac list --json                              keys and their KeePassXC addresses
  tpm-hmac doctor                                   why no TPM key shows up, and how to fix it
  tpm-hmac challenge --handle 0x81000100 --hex 00112233
  keepassxc-cli open --yubikey 1:2164261120 db.kdbx  use the key at 0x81000100 (= serial 2164261120)

The TPM is found through --tcti, else TPM2TOOLS_TCTI / TCTI / TEST_TCTI, else /dev/tpmrm0, tpm2-abrmd, /dev/tpm0.";

#[cfg(unix)]
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

#[cfg(unix)]
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
    /// Name a key (shown by `list` and in KeePassXC's key list)
    Label(cmd::label::Args),
    /// Check the TPM, your access to it and KeePassXC's TPM support; each problem with its fix
    Doctor(cmd::doctor::Args),
    /// Present keys to stock KeePassXC as YubiKey-style cards, through pcscd (root's choice)
    ///
    /// enable and disable need root; under sudo the driver's file must be in /etc/keepassxc-tpm/
    /// and a --metadata file is read with the rights of the user who ran sudo. This subcommand is
    /// not meant to be delegated through a narrow sudoers rule: whoever may run it as root decides
    /// which keys every local user of pcscd may use.
    Pcsc(cmd::pcsc::Args),
}

#[cfg(unix)]
fn main() -> ExitCode {
    // ESYS prints its own WARNING/ERROR lines on TPM errors; ours say what to do instead.
    if std::env::var_os("TSS2_LOG").is_none() {
        std::env::set_var("TSS2_LOG", "all+none");
    }
    // For packagers: the man page and shell completions, generated from the definitions below.
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--man") => return generate_man(),
        Some("--completions") => return generate_completions(args.get(2).map(String::as_str)),
        _ => {}
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

#[cfg(unix)]
fn generate_man() -> ExitCode {
    use clap::CommandFactory;
    match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpm-hmac: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(unix)]
fn generate_completions(shell: Option<&str>) -> ExitCode {
    use clap::{CommandFactory, ValueEnum};
    let Some(shell) = shell.and_then(|s| clap_complete::Shell::from_str(s, true).ok()) else {
        eprintln!("tpm-hmac: --completions takes bash, zsh, fish, elvish or powershell");
        return ExitCode::from(2);
    };
    clap_complete::generate(shell, &mut Cli::command(), "tpm-hmac", &mut std::io::stdout());
    ExitCode::SUCCESS
}

#[cfg(unix)]
/// The TPM, on a worker thread: a TPM that stops answering ends in an error after
/// DEFAULT_TIMEOUT instead of a hang. Only TPM work runs there; whatever the user types or a
/// file holds is read before, on the main thread, where no timeout runs.
pub struct CliWorker {
    worker: TpmWorker,
    tcti: Option<String>,
}

#[cfg(unix)]
impl CliWorker {
    /// The TCTI given with --tcti, if any.
    pub fn tcti(&self) -> Option<&str> {
        self.tcti.as_deref()
    }

    pub fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Tpm) -> keepassxc_tpm::Result<T> + Send + 'static,
    ) -> Result<T, CliError> {
        Ok(self.worker.run(job)?)
    }
}

#[cfg(unix)]
fn run(cli: Cli) -> Result<(), CliError> {
    let options = TpmOptions::tcti(cli.tcti.clone()).with_bus_encryption(!cli.no_bus_encryption);
    let tpm = CliWorker { worker: TpmWorker::start(options, DEFAULT_TIMEOUT), tcti: cli.tcti.clone() };
    match cli.command {
        Command::List(args) => cmd::list::run(&tpm, args),
        Command::Create(args) => cmd::create::run(&tpm, args),
        Command::Import(args) => cmd::import::run(&tpm, args),
        Command::Challenge(args) => cmd::challenge::run(&tpm, args),
        Command::Info(args) => cmd::info::run(&tpm, args),
        Command::Delete(args) => cmd::delete::run(&tpm, args),
        Command::Label(args) => cmd::label::run(&tpm, args),
        Command::Doctor(args) => cmd::doctor::run(&tpm, args),
        Command::Pcsc(args) => cmd::pcsc::run(&tpm, args),
    }
}
