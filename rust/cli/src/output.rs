//! How a key is printed: one line for people, one JSON object for scripts.

use keepassxc_tpm::{KeyInfo, Origin};
use serde::Serialize;

pub use keepassxc_tpm::KeySummary as KeyJson;

pub fn keepassxc_address(key: &KeyInfo) -> String {
    key.keepassxc_address()
}

/// One line: handle, algorithm, origin and the `--yubikey` address.
pub fn line(key: &KeyInfo) -> String {
    let origin = match key.origin {
        Origin::Generated => "generated in TPM",
        Origin::Imported => "imported",
    };
    let label = key.label.as_deref().map(|l| format!("  {l}")).unwrap_or_default();
    format!(
        "{}  {:<11}  {:<16}  --yubikey {}{label}",
        key.handle,
        key.algorithm.to_string(),
        origin,
        keepassxc_address(key)
    )
}

pub fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("key JSON has only plain fields")
}
