//! The file that says which keys the driver serves (root's choice, `tpm-hmac pcsc enable`): read
//! as hostile input, refused unless only root can have written it, each key checked from its record.
//!
//! Its format is the core's metadata file (`{"keys": {"0x81000100": KeyRecord}}`, see
//! `keepassxc_tpm::metadata`) plus a top-level `"tcti"`, so the core opens it as the metadata of
//! the connection and pins every key to its record, failing closed as for every other front end.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use keepassxc_tpm::metadata::{self, Trust};
use keepassxc_tpm::{Algorithm, KeyRecord, PersistentHandle};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where `tpm-hmac pcsc enable` writes and the packaged reader.conf.d entry points.
pub const DEFAULT_PATH: &str = "/etc/keepassxc-tpm/pcsc.json";

/// The largest file read (the core's metadata limit).
pub const MAX_FILE_SIZE: u64 = keepassxc_tpm::metadata::MAX_FILE_SIZE;

/// The file as stored: the TPM, the records, and anything else kept as it is.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FileContent {
    /// The TCTI the keys were enabled through (`None`: the core's default search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcti: Option<String>,
    /// Each enabled key's record, by handle ("0x81000100"), as the core's metadata file has them.
    #[serde(default)]
    pub keys: BTreeMap<String, Value>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A key the driver serves: a card in one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedKey {
    /// Where the key lives; its KeePassXC serial is the handle as a number.
    pub handle: PersistentHandle,
    /// The record the key is pinned to (the core checks the TPM's key against it).
    pub record: KeyRecord,
}

/// What the file says, checked.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The TCTI to open the TPM with.
    pub tcti: Option<String>,
    /// Keys served, in handle order (slot 0 holds the first).
    pub served: Vec<ServedKey>,
    /// Keys in the file that are not served, each with why.
    pub refused: Vec<(String, String)>,
}

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

/// Reads and checks the file at `path`: its stamp (as read) and what it serves, or why it serves
/// nothing at all.
pub fn load(path: &Path) -> (Option<Stamp>, Result<Config, String>) {
    match read_checked(path) {
        Ok((stamp, content)) => (Some(stamp), Ok(check(content))),
        Err(e) => (Stamp::of(path), Err(e)),
    }
}

/// The file's content, when only root (or this process's own user, which is root inside pcscd)
/// can have written it: a regular file, not a symlink, not writable by group or others, in a
/// directory that is not either. A missing file serves nothing.
pub fn read_checked(path: &Path) -> Result<(Stamp, FileContent), String> {
    let (file, info) = open_regular(path)?;
    metadata::only_trusted_could_write(path, &info, Trust::ServiceReadOnly)?;
    Ok((Stamp::from(&info), parse(file, &info)?))
}

/// The record of `handle` in a metadata file of another user (`tpm-hmac pcsc enable --metadata`):
/// read as hostile input and never written; the caller checks the record against the TPM.
pub fn record_in(path: &Path, handle: PersistentHandle) -> Result<Option<KeyRecord>, String> {
    let (file, info) = open_regular(path)?;
    record_of(parse(file, &info)?, handle)
}

/// [`record_in`] for a file's text, read by the caller (at most [`MAX_FILE_SIZE`] bytes).
pub fn record_in_text(text: &str, handle: PersistentHandle) -> Result<Option<KeyRecord>, String> {
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(format!("it has more than {MAX_FILE_SIZE} bytes"));
    }
    record_of(serde_json::from_str(text).map_err(|e| format!("it is not valid JSON ({e})"))?, handle)
}

fn record_of(content: FileContent, handle: PersistentHandle) -> Result<Option<KeyRecord>, String> {
    content
        .keys
        .get(&handle.to_string())
        .map(|value| {
            serde_json::from_value(value.clone()).map_err(|e| format!("the record of {handle} is malformed ({e})"))
        })
        .transpose()
}

/// Opens a regular file without following a symlink or blocking on a special file.
fn open_regular(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "it is a symbolic link".to_owned(),
            _ => format!("cannot open it ({e})"),
        })?;
    let info = file.metadata().map_err(|e| format!("cannot look at it ({e})"))?;
    if !info.file_type().is_file() {
        return Err("it is not a regular file".to_owned());
    }
    Ok((file, info))
}

/// At most [`MAX_FILE_SIZE`] bytes of JSON.
fn parse(mut file: std::fs::File, info: &std::fs::Metadata) -> Result<FileContent, String> {
    if info.len() > MAX_FILE_SIZE {
        return Err(format!("it has {} bytes, more than {MAX_FILE_SIZE}", info.len()));
    }
    let mut text = String::new();
    // The size can change between fstat and read: the read itself is bounded too.
    (&mut file).take(MAX_FILE_SIZE + 1).read_to_string(&mut text).map_err(|e| format!("cannot read it ({e})"))?;
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(format!("it has more than {MAX_FILE_SIZE} bytes"));
    }
    serde_json::from_str(&text).map_err(|e| format!("it is not valid JSON ({e})"))
}

/// Sorts the file's keys into served and refused (with why).
pub fn check(content: FileContent) -> Config {
    let mut config = Config { tcti: content.tcti.filter(|t| !t.trim().is_empty()), ..Config::default() };
    for (name, value) in content.keys {
        let served = name.parse::<PersistentHandle>().map_err(|e| e.to_string()).and_then(|handle| {
            let record: KeyRecord =
                serde_json::from_value(value).map_err(|e| format!("its record is malformed ({e})"))?;
            servable(handle, &record)?;
            Ok(ServedKey { handle, record })
        });
        match served {
            Ok(key) => config.served.push(key),
            Err(why) => config.refused.push((name, why)),
        }
    }
    config.served.sort_by_key(|k| k.handle);
    config
}

/// A record the driver may serve: it pins the key's name, its public area (which hashes to that
/// name, so the attributes read from it are the key's own: the core's [`KeyRecord::recorded_key`])
/// and the storage key; the key is an HMAC-SHA1 key without a PIN (a PCR policy is fine when the
/// record names the PCRs).
pub fn servable(handle: PersistentHandle, record: &KeyRecord) -> Result<(), String> {
    record.key_name.as_deref().ok_or("its record pins no key name")?;
    record.key_public.as_deref().ok_or("its record has no public area")?;
    record.storage_key_name.as_deref().ok_or("its record pins no storage key")?;
    let key = record
        .recorded_key(handle)
        .ok_or("its recorded public area is not the HMAC key it names (or not an HMAC key)")?;
    if key.needs_pin() {
        return Err(
            "it needs a PIN, which a YubiKey-style card cannot ask for: use it in the KeePassXC fork".to_owned()
        );
    }
    if key.algorithm != Algorithm::Sha1 {
        return Err("it is not an HMAC-SHA1 key (KeePassXC's YubiKey protocol carries 20-byte responses)".to_owned());
    }
    if key.policy_bound && record.pcrs.is_empty() {
        return Err("it is bound to a policy but its record names no PCRs".to_owned());
    }
    Ok(())
}

/// Writes `content` to a new file beside `path` (the core's [`metadata::write_temporary`]: mode
/// 0600, as the core keeps its metadata files; the directory is made 0755 when missing) and fsyncs
/// it; [`install`] puts it in place.
pub fn write_temporary(path: &Path, content: &FileContent) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    let text = serde_json::to_string_pretty(content).map_err(std::io::Error::other)?;
    metadata::write_temporary(path, text.as_bytes())
}

/// Renames the file [`write_temporary`] made over `path` (a regular file or nothing) and fsyncs the
/// directory.
pub fn install(tmp: &Path, path: &Path) -> std::io::Result<()> {
    metadata::install(tmp, path).map_err(|e| std::io::Error::other(format!("{e}; move it away")))
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

    use sha2::{Digest, Sha256};

    use super::*;

    /// A keyed-hash TPMT_PUBLIC: type, nameAlg SHA-256, attributes (fixedTPM, fixedParent,
    /// sensitiveDataOrigin, sign; userWithAuth without a policy), policy, HMAC scheme, unique.
    fn public(no_da: bool, policy: &[u8], hash: u16) -> Vec<u8> {
        let user_with_auth = if policy.is_empty() { 0x40 } else { 0 };
        let attributes: u32 = 0x0004_0032 | user_with_auth | if no_da { 1 << 10 } else { 0 };
        let mut p = vec![0x00, 0x08, 0x00, 0x0B];
        p.extend(attributes.to_be_bytes());
        p.extend((policy.len() as u16).to_be_bytes());
        p.extend(policy);
        p.extend([0x00, 0x05]);
        p.extend(hash.to_be_bytes());
        p.extend([0x00, 0x20]);
        p.extend([0xAB; 32]);
        p
    }

    fn record(public: &[u8]) -> KeyRecord {
        KeyRecord {
            key_name: Some(format!("000b{}", hex::encode(Sha256::digest(public)))),
            key_public: Some(hex::encode(public)),
            storage_key_name: Some("000b00".into()),
            ..KeyRecord::default()
        }
    }

    #[test]
    fn which_records_are_served() {
        let servable = |record: &KeyRecord| super::servable(PersistentHandle::new(0x8100_0100).unwrap(), record);
        assert_eq!(servable(&record(&public(true, &[], 0x0004))), Ok(()));
        assert_eq!(servable(&record(&public(true, &[0; 32], 0x0004))), Ok(()), "the empty policy (no PIN, no PCRs)");
        assert!(servable(&record(&public(false, &[], 0x0004)))
            .unwrap_err()
            .contains("needs a PIN, which a YubiKey-style card cannot ask for: use it in the KeePassXC fork"));
        assert!(servable(&record(&public(true, &[], 0x000B))).unwrap_err().contains("not an HMAC-SHA1 key"));
        let bound = public(true, &[0x11; 32], 0x0004);
        assert!(servable(&record(&bound)).unwrap_err().contains("names no PCRs"));
        assert_eq!(servable(&KeyRecord { pcrs: vec![7], ..record(&bound) }), Ok(()), "PCR-bound without a PIN");
        let mut wrong = record(&public(true, &[], 0x0004));
        wrong.key_name = Some(format!("000b{}", "00".repeat(32)));
        assert!(servable(&wrong).unwrap_err().contains("not the HMAC key it names"));
        assert!(servable(&KeyRecord { storage_key_name: None, ..record(&public(true, &[], 4)) }).is_err());
        assert!(servable(&KeyRecord::default()).is_err());
    }

    #[test]
    fn files_only_root_can_have_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pcsc.json");
        let good = public(true, &[], 0x0004);
        let text = serde_json::json!({
            "tcti": "swtpm:port=1",
            "keys": {
                "0x81000102": serde_json::to_value(record(&good)).unwrap(),
                "0x81000101": serde_json::to_value(record(&public(false, &[], 4))).unwrap(),
                "0x81000100": serde_json::to_value(record(&good)).unwrap(),
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
        assert!(load(&dir.path().join("missing.json")).1.unwrap_err().contains("cannot open"));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(load(&path).1.unwrap_err().contains("not valid JSON"));

        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(&path, b"{}").unwrap();
        assert!(load(&path).1.unwrap_err().contains("its directory is writable"));
    }

    #[test]
    fn written_files_are_read_back_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/pcsc.json");
        let mut content = FileContent { tcti: Some("device:/dev/tpmrm0".into()), ..FileContent::default() };
        content.keys.insert("0x81000100".into(), serde_json::to_value(record(&public(true, &[], 4))).unwrap());
        content.other.insert("future".into(), 1.into());
        let tmp = write_temporary(&path, &content).unwrap();
        install(&tmp, &path).unwrap();
        assert!(!tmp.exists());
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o755);
        let (_, back) = read_checked(&path).unwrap();
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
