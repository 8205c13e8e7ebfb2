//! One module per subcommand.
pub mod challenge;
pub mod create;
pub mod delete;
pub mod doctor;
pub mod import;
pub mod info;
pub mod label;
pub mod list;
pub mod pcsc;

use std::path::PathBuf;

use keepassxc_tpm::PersistentHandle;

use crate::error::CliError;
use crate::CliWorker;

/// The key a command works on: by its handle (or KeePassXC serial), or by its key file.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// The key's persistent handle (or its KeePassXC serial)
    #[arg(long, value_parser = parse_handle)]
    handle: Option<PersistentHandle>,
    /// The key's TSS2 PRIVATE KEY file (made with `create --key-file` or `import --key-file`)
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

impl Target {
    /// The key file given, if the key was named by its file.
    pub fn key_file(&self) -> Option<&std::path::Path> {
        self.key_file.as_deref()
    }

    /// The key's handle; a key file's is its record's serial.
    pub fn handle(&self, tpm: &CliWorker) -> Result<PersistentHandle, CliError> {
        match (self.handle, &self.key_file) {
            (Some(handle), _) => Ok(handle),
            (None, Some(path)) => {
                let path = path.clone();
                tpm.run(move |tpm| tpm.file_key_serial(&path))
            }
            (None, None) => Err(CliError::Input("give --handle or --key-file".to_owned())),
        }
    }
}

/// clap value parser for `--handle`.
pub fn parse_handle(text: &str) -> Result<PersistentHandle, String> {
    text.parse::<PersistentHandle>().map_err(|bad| bad.to_string())
}
