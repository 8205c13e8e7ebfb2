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

use keepassxc_tpm::PersistentHandle;

/// clap value parser for `--handle`.
pub fn parse_handle(text: &str) -> Result<PersistentHandle, String> {
    text.parse::<PersistentHandle>().map_err(|bad| bad.to_string())
}
