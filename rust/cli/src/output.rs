//! How a key is printed: one line for people, one JSON object for scripts.

use keepassxc_tpm::{KeyInfo, Origin};
use serde::Serialize;

pub use keepassxc_tpm::KeySummary as KeyJson;

pub fn keepassxc_address(key: &KeyInfo) -> String {
    key.keepassxc_address()
}

/// One line: handle (or key file serial), where the key is kept, algorithm, origin and the
/// `--yubikey` address.
pub fn line(key: &KeyInfo) -> String {
    let origin = match key.origin {
        Origin::Generated => "generated in TPM",
        Origin::Imported => "imported",
    };
    let label = key.label.as_deref().map(|l| format!("  {l}")).unwrap_or_default();
    let kept_in = if key.handle.is_file_key() { "key file" } else { "persistent" };
    format!(
        "{}  {kept_in:<10}  {:<11}  {:<16}  --yubikey {}{label}",
        key.handle,
        key.algorithm.to_string(),
        origin,
        keepassxc_address(key)
    )
}

/// Writes one line to stdout (see `out!`); a closed pipe ends the program with status 141.
pub fn write_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        let _ = writeln!(std::io::stderr(), "tpm-hmac: cannot write the output: {e}");
        std::process::exit(1);
    }
}

pub fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("key JSON has only plain fields")
}
