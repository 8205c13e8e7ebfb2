//! One module per subcommand.
pub mod challenge;
pub mod create;
pub mod delete;
pub mod doctor;
pub mod import;
pub mod info;
pub mod label;
pub mod list;

use keepassxc_tpm::{Error, KeyHandle};

/// clap value parser for `--handle`.
pub fn parse_handle(text: &str) -> Result<KeyHandle, String> {
    text.parse::<KeyHandle>().map_err(|e: Error| e.to_string())
}
