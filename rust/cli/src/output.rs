//! How a key is printed: one line for people, one JSON object for scripts.

use keepassxc_tpm::{KeyInfo, Origin};
use serde::Serialize;

/// The JSON shape of a key, shared by `list`, `info`, `create` and `import`.
#[derive(Serialize)]
pub struct KeyJson {
    pub handle: String,
    pub serial: u32,
    pub slot: i32,
    pub algorithm: keepassxc_tpm::Algorithm,
    pub origin: Origin,
    pub display_name: String,
    /// keepassxc-cli's `--yubikey` value for this key.
    pub keepassxc: String,
    pub no_da: bool,
    /// Usable only while the PCRs it is bound to keep their values.
    pub pcr_bound: bool,
}

impl From<&KeyInfo> for KeyJson {
    fn from(key: &KeyInfo) -> Self {
        KeyJson {
            handle: key.handle.to_string(),
            serial: key.serial(),
            slot: key.slot(),
            algorithm: key.algorithm,
            origin: key.origin,
            display_name: key.display_name(),
            keepassxc: keepassxc_address(key),
            no_da: key.no_da,
            pcr_bound: key.policy_bound,
        }
    }
}

pub fn keepassxc_address(key: &KeyInfo) -> String {
    format!("{}:{}", key.slot(), key.serial())
}

/// One line: handle, algorithm, origin and the `--yubikey` address.
pub fn line(key: &KeyInfo) -> String {
    let origin = match key.origin {
        Origin::Generated => "generated in TPM",
        Origin::Imported => "imported",
    };
    format!("{}  {:<11}  {:<16}  --yubikey {}", key.handle, key.algorithm.to_string(), origin, keepassxc_address(key))
}

pub fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("key JSON has only plain fields")
}
