//! A small per-user file of what the TPM cannot tell us about a key: the storage key it was
//! provisioned under (pinned, to detect a swapped TPM or an interposer) and its PCR binding.
//! A missing or broken file never makes a key unusable: it only turns those checks off.
//! Writes are atomic (write a temporary file, then rename).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::address::KeyHandle;

/// Environment variable that overrides the file's location.
pub const METADATA_ENV: &str = "KEEPASSXC_TPM_METADATA";

/// What we remember about one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key's TPM name (hex): a record whose key name differs belongs to another key that
    /// once sat at this handle (another TPM, a simulator, a re-created key) and is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// Name (hex) of the storage key that salts the encrypted session: pinned at provisioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_key_name: Option<String>,
    /// SHA-256 PCRs the key's policy is bound to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pcrs: Vec<u8>,
    /// The key needs a PIN.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pin: bool,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    keys: BTreeMap<String, KeyRecord>,
}

/// The metadata file; `None` when no location is known (no HOME): then nothing is remembered.
#[derive(Clone, Debug)]
pub struct Metadata {
    path: Option<PathBuf>,
}

impl Metadata {
    /// `$KEEPASSXC_TPM_METADATA`, else `$XDG_DATA_HOME/keepassxc-tpm/keys.json`, else
    /// `~/.local/share/keepassxc-tpm/keys.json`.
    pub fn default_location() -> Metadata {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let path = env(METADATA_ENV).or_else(|| {
            env("XDG_DATA_HOME")
                .or_else(|| env("HOME").map(|h| h.join(".local/share")))
                .map(|d| d.join("keepassxc-tpm/keys.json"))
        });
        Metadata { path }
    }

    pub fn at(path: impl Into<PathBuf>) -> Metadata {
        Metadata { path: Some(path.into()) }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The record of `handle`; `None` when there is none or the file cannot be read.
    pub fn get(&self, handle: KeyHandle) -> Option<KeyRecord> {
        self.read().keys.get(&handle.to_string()).cloned()
    }

    /// Stores (or with `None` removes) the record of `handle`.
    pub fn set(&self, handle: KeyHandle, record: Option<KeyRecord>) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut file = self.read();
        match record {
            Some(r) => file.keys.insert(handle.to_string(), r),
            None => file.keys.remove(&handle.to_string()),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let mut out = std::fs::File::create(&tmp)?;
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    fn read(&self) -> File {
        // A broken file is treated as empty: keys keep working, only the extra checks are off.
        self.path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::at(dir.path().join("sub/keys.json"));
        let h = KeyHandle::new(0x8100_0100).unwrap();
        assert_eq!(meta.get(h), None);
        let record = KeyRecord {
            key_name: Some("000b34".into()),
            storage_key_name: Some("000b12".into()),
            pcrs: vec![7, 16],
            pin: true,
        };
        meta.set(h, Some(record.clone())).unwrap();
        assert_eq!(meta.get(h), Some(record));
        meta.set(h, None).unwrap();
        assert_eq!(meta.get(h), None);
    }

    #[test]
    fn broken_or_missing_files_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(&path, b"{not json").unwrap();
        let meta = Metadata::at(&path);
        let h = KeyHandle::new(0x8100_0100).unwrap();
        assert_eq!(meta.get(h), None);
        meta.set(h, Some(KeyRecord::default())).unwrap();
        assert_eq!(meta.get(h), Some(KeyRecord::default()), "a broken file is replaced on the next write");
        assert_eq!(Metadata { path: None }.get(h), None);
    }
}
