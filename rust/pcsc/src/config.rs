//! The driver's own view of its file (root's choice, `tpm-hmac pcsc enable`): where it is, a stamp
//! to notice a change without reading it, and the keys the core says may be served as cards
//! ([`keepassxc_tpm::cards`]: the file is read and checked there, as root's file for a service, for
//! every front end alike).
#![forbid(unsafe_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use keepassxc_tpm::cards::{Card, Cards, DEFAULT_PATH};

/// What identifies one version of the file, to notice a change without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mode: u32,
    uid: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The stamp of `path` (not following a symlink); `None` when it cannot be looked at.
    pub fn of(path: &Path) -> Option<Stamp> {
        std::fs::symlink_metadata(path).ok().map(|m| Stamp::from(&m))
    }
}

impl From<&std::fs::Metadata> for Stamp {
    fn from(m: &std::fs::Metadata) -> Self {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mode: m.mode(),
            uid: m.uid(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The file at `path`: its stamp, taken before it is read (a change after that is noticed at the
/// next look), and what it serves, or why it serves nothing at all. A missing file serves nothing.
pub fn load(path: &Path) -> (Option<Stamp>, Result<Cards, String>) {
    let stamp = Stamp::of(path);
    (stamp, Cards::read(path))
}

/// The path the reader.conf.d entry's DEVICENAME gives, else the default.
pub fn path_from_device_name(name: Option<&str>) -> PathBuf {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => PathBuf::from(n),
        None => PathBuf::from(DEFAULT_PATH),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use swtpm_fixture::records::{hmac_public as public, record_json};

    use super::*;

    fn record(public: &[u8]) -> serde_json::Value {
        serde_json::from_str(&record_json(public)).unwrap()
    }

    #[test]
    fn files_only_root_can_have_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pcsc.json");
        let good = public(true, &[], 0x0004);
        let text = serde_json::json!({
            "tcti": "swtpm:port=1",
            "keys": {
                "0x81000102": record(&good),
                "0x81000101": record(&public(false, &[], 4)),
                "0x81000100": record(&good),
                "nonsense": {}
            },
            "future": 1
        });
        std::fs::write(&path, text.to_string()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (stamp, config) = load(&path);
        let config = config.unwrap();
        assert!(stamp.is_some());
        assert_eq!(config.tcti.as_deref(), Some("swtpm:port=1"));
        let served: Vec<u32> = config.served.iter().map(|k| k.handle.value()).collect();
        assert_eq!(served, [0x8100_0100, 0x8100_0102], "in handle order");
        assert_eq!(config.refused.len(), 2);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(load(&path).1.unwrap_err().contains("writable by group or others"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o602)).unwrap();
        assert!(load(&path).1.is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&path).1.is_ok(), "readable by others is fine");
        assert_ne!(Stamp::of(&path), stamp, "a chmod is a change");

        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(load(&link).1.unwrap_err(), "it is a symbolic link");
        assert!(load(dir.path()).1.unwrap_err().contains("not a regular file"));
        assert!(load(&dir.path().join("missing.json")).1.unwrap().served.is_empty(), "a missing file serves nothing");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(load(&path).1.unwrap_err().contains("not valid JSON"));

        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(&path, b"{}").unwrap();
        assert!(load(&path).1.unwrap_err().contains("its directory is writable"));
    }

    #[test]
    fn written_files_are_read_back_and_private() {
        use keepassxc_tpm::metadata::{install, FileContent};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/pcsc.json");
        let mut content = FileContent { tcti: Some("device:/dev/tpmrm0".into()), ..FileContent::default() };
        content.keys.insert("0x81000100".into(), record(&public(true, &[], 4)));
        content.other.insert("future".into(), 1.into());
        let tmp = content.write_temporary(&path, 0o755, 0o600).unwrap();
        install(&tmp, &path).unwrap();
        assert!(!tmp.exists());
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o755);
        let back = keepassxc_tpm::Metadata::service_file(&path).content().unwrap();
        assert_eq!(back.tcti.as_deref(), Some("device:/dev/tpmrm0"));
        assert_eq!(back.other.get("future"), Some(&1.into()), "unknown fields kept");
        assert_eq!(load(&path).1.unwrap().served.len(), 1);
    }

    #[test]
    fn device_name() {
        assert_eq!(path_from_device_name(None), PathBuf::from(DEFAULT_PATH));
        assert_eq!(path_from_device_name(Some(" ")), PathBuf::from(DEFAULT_PATH));
        assert_eq!(path_from_device_name(Some("/x/p.json")), PathBuf::from("/x/p.json"));
    }
}
