//! A small per-user file of what the TPM cannot tell us about a key: its public area and the
//! storage key it was provisioned under (both pinned, to detect a swapped TPM or an
//! interposer) and its PCR binding.
//!
//! The file is treated as hostile input: only a regular file is read (never through a
//! symlink, never blocking on a FIFO or device), at most [`MAX_FILE_SIZE`] bytes; it is written
//! as mode 0600 in a 0700 directory, through a temporary file with a random name created with
//! `O_EXCL` and `O_NOFOLLOW`, fsynced and renamed, under an exclusive lock so concurrent
//! provisioning never loses a record. Records and fields this version does not understand are
//! kept as they are. A file that cannot be read or parsed is an error, never "no record": a
//! record that silently disappeared would turn the storage-key check off.

use std::collections::BTreeMap;
#[cfg(unix)]
use std::fs::DirBuilder;
use std::fs::File;
use std::io::{ErrorKind as IoErrorKind, Read, Write};
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::address::PersistentHandle;
use crate::challenge::SlotMode;
use crate::error::{Error, Result};
use crate::private_file::{self, kind_of};

/// Environment variable that overrides the file's location.
pub const METADATA_ENV: &str = "KEEPASSXC_TPM_METADATA";

/// The largest metadata file read (a record is about 500 bytes; a TPM holds at most a few
/// dozen keys).
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// How long provisioning waits for another process that holds the file's lock.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(5);

/// What we remember about one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key's TPM name (hex): a record whose key name differs from the key's belongs to
    /// another key (another TPM, a re-created key, or an object put there to impersonate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// The key's public area (TPMT_PUBLIC, hex). Checked against `key_name` before use, so the
    /// attributes taken from it (PIN or not) are the key's own, not the file's say-so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_public: Option<String>,
    /// Name (hex) of the storage key that salts the encrypted session: pinned at provisioning,
    /// or on first use for keys made by other tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_key_name: Option<String>,
    /// The storage key's public area (TPMT_PUBLIC, hex) when it is the persistent SRK: a challenge
    /// encrypts its session salt to this key without asking the TPM (checked against the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_key_public: Option<String>,
    /// SHA-256 PCRs the key's policy is bound to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pcrs: Vec<u8>,
    /// The kind of YubiKey slot the key is a twin of (what it hashes of a padded challenge).
    #[serde(default, skip_serializing_if = "SlotMode::is_variable")]
    pub yubikey_mode: SlotMode,
    /// The user's name for the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// For a key kept in a file: its TPM2B_PRIVATE (hex), wrapped by the storage key, as the file
    /// holds it; the record alone loads the key (the PC/SC driver's copy needs nothing under /home).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_private: Option<String>,
    /// For a key kept in a file: where the file was written (for `list` and `delete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

impl KeyRecord {
    /// The record's label if it is one `tpm-hmac label` would set (the file may have been edited:
    /// a label that would drive a terminal or KeePassXC's key list is not shown).
    pub fn shown_label(&self) -> Option<String> {
        self.label.clone().filter(|label| crate::key::check_label(label).is_ok_and(|checked| checked == *label))
    }

    /// The key this record describes, read from its recorded public area alone (no TPM): `None`
    /// unless that area hashes to the recorded name and is an HMAC key's. Its attributes (PIN,
    /// PCR policy, empty policy, hash) are the key's own, whatever else the file says.
    pub fn recorded_key(&self, handle: PersistentHandle) -> Option<crate::key::KeyInfo> {
        let public = hex::decode(self.key_public.as_deref()?).ok()?;
        let name = crate::key::public::sha256_name(&public)?;
        if hex::encode(name) != *self.key_name.as_deref()? {
            return None;
        }
        crate::key::public::hmac_key(handle, &public)
    }
}

/// The file as stored, read once (a snapshot); every record is kept as raw JSON until it is asked
/// for, so one record this version cannot read never costs another key its record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FileContent {
    /// The TCTI the keys were enabled through, in the PC/SC driver's file (`None`: the core's
    /// default search); a user's file has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcti: Option<String>,
    /// Each key's record, by handle ("0x81000100").
    #[serde(default)]
    pub keys: BTreeMap<String, Value>,
    /// Fields this version does not know, kept as they are.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl FileContent {
    /// The content of a file's `text` (at most [`MAX_FILE_SIZE`] bytes), read by the caller; the
    /// error says why it is not a record file, in words that follow "it".
    pub fn from_text(text: &str) -> std::result::Result<FileContent, String> {
        if text.len() as u64 > MAX_FILE_SIZE {
            return Err(format!("it has more than the {MAX_FILE_SIZE} bytes a metadata file may have"));
        }
        if text.trim().is_empty() {
            return Ok(FileContent::default());
        }
        serde_json::from_str(text).map_err(|e| format!("it is not valid JSON ({e})"))
    }

    /// The serial of the key `file` holds: the key-file record whose public area and wrapped
    /// private part are the file's.
    pub fn key_file_serial(&self, file: &crate::keyfile::KeyFile) -> Option<PersistentHandle> {
        let public = hex::encode(file.public.get(2..)?);
        let private = hex::encode(&file.private);
        self.keys.iter().find_map(|(name, value)| {
            let handle = name.parse::<PersistentHandle>().ok().filter(|h| h.is_file_key())?;
            let record = serde_json::from_value::<KeyRecord>(value.clone()).ok()?;
            (record.key_public.as_deref() == Some(&public) && record.key_private.as_deref() == Some(&private))
                .then_some(handle)
        })
    }

    /// The record of `handle`, if there is one.
    pub fn record(&self, handle: PersistentHandle) -> std::result::Result<Option<KeyRecord>, String> {
        self.keys
            .get(&handle.to_string())
            .map(|value| {
                serde_json::from_value(value.clone()).map_err(|e| format!("the record of {handle} is malformed ({e})"))
            })
            .transpose()
    }

    #[cfg(unix)]
    /// Writes this content to a new file beside `path` (see [`write_temporary`]) with mode
    /// `file_mode` (a missing directory is made with `dir_mode`), for [`install`] to put in place.
    pub fn write_temporary(&self, path: &Path, dir_mode: u32, file_mode: u32) -> std::io::Result<PathBuf> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        DirBuilder::new().recursive(true).mode(dir_mode).create(dir)?;
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let tmp = write_temporary(path, text.as_bytes())?;
        if let Err(e) = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file_mode)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }
}

/// Who may have written a record file, chosen by whoever opens it: the pins in it are only as
/// good as that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// A user's own file: owned by this process's user, private. Written by this process (records
    /// of new keys, first uses), and made 0600 when it is found readable by others.
    Private,
    /// Root's file, read by a service (the PC/SC driver inside pcscd, as root or as its own user):
    /// owned by root or by this process's user, writable by no one else, in a directory likewise.
    /// It may be readable by the service's group; it is never changed, not even its mode.
    ServiceReadOnly,
}

/// The metadata file; `None` when no location is known (no HOME): then nothing is remembered.
#[derive(Clone, Debug)]
pub struct Metadata {
    path: Option<PathBuf>,
    trust: Trust,
}

/// The file's exclusive lock, held across a read-modify-write (or a whole provisioning).
pub struct MetadataLock<'a> {
    metadata: &'a Metadata,
    _file: Option<File>,
}

impl Metadata {
    /// `$KEEPASSXC_TPM_METADATA`, else `$XDG_DATA_HOME/keepassxc-tpm/keys.json`, else
    /// `~/.local/share/keepassxc-tpm/keys.json`.
    /// On Windows: `$KEEPASSXC_TPM_METADATA`, else `%LOCALAPPDATA%\\keepassxc-tpm\\keys.json`.
    pub fn default_location() -> Metadata {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        #[cfg(unix)]
        let default = || {
            env("XDG_DATA_HOME")
                .map(|d| d.join("keepassxc-tpm/keys.json"))
                .or_else(|| env("HOME").map(|h| crate::os::default_record_file(&h)))
        };
        #[cfg(windows)]
        let default = || env("LOCALAPPDATA").map(|d| d.join("keepassxc-tpm").join("keys.json"));
        Metadata { path: env(METADATA_ENV).or_else(default), trust: Trust::Private }
    }

    /// The user's own metadata file at `path` ([`Trust::Private`]).
    pub fn at(path: impl Into<PathBuf>) -> Metadata {
        Metadata { path: Some(path.into()), trust: Trust::Private }
    }

    /// Root's file at `path`, read by a service ([`Trust::ServiceReadOnly`]): read, never written.
    pub fn service_file(path: impl Into<PathBuf>) -> Metadata {
        Metadata { path: Some(path.into()), trust: Trust::ServiceReadOnly }
    }

    /// The file's path; `None` when no location could be found (no home directory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The whole file, read once and checked as its trust policy says (a missing file is empty).
    pub fn content(&self) -> Result<FileContent> {
        match &self.path {
            Some(path) => read(path, self.trust),
            None => Ok(FileContent::default()),
        }
    }

    /// The record of `handle`; `Ok(None)` when there is none (or no file).
    pub fn get(&self, handle: PersistentHandle) -> Result<Option<KeyRecord>> {
        let Some(path) = &self.path else { return Ok(None) };
        read(path, self.trust)?.record(handle).map_err(|why| broken(path, why))
    }

    /// Every record in the file, each parsed or with why it cannot be (for a health check).
    /// A file that cannot be read at all is an error; a missing one has no records.
    pub fn records(&self) -> Result<Vec<(String, std::result::Result<KeyRecord, String>)>> {
        let Some(path) = &self.path else { return Ok(Vec::new()) };
        Ok(read(path, self.trust)?
            .keys
            .into_iter()
            .map(|(handle, value)| (handle, serde_json::from_value(value).map_err(|e| e.to_string())))
            .collect())
    }

    /// Stores (or with `None` removes) the record of `handle`, under the file's lock. Removing a
    /// record that is not there touches nothing: no directory, lock or rewrite.
    pub fn set(&self, handle: PersistentHandle, record: Option<&KeyRecord>) -> Result<()> {
        if record.is_none() && matches!(self.get(handle), Ok(None)) {
            return Ok(());
        }
        self.lock(LOCK_WAIT)?.set(handle, record)
    }

    /// Takes the file's exclusive lock (creating its directory, mode 0700), waiting at most
    /// `wait` for another process that holds it.
    pub fn lock(&self, wait: Duration) -> Result<MetadataLock<'_>> {
        let Some(path) = &self.path else { return Ok(MetadataLock { metadata: self, _file: None }) };
        if self.trust != Trust::Private {
            return Err(broken(path, "it is root's file, read by a service, and never written by one".to_owned()));
        }
        let fail = |e: std::io::Error| broken(path, format!("cannot lock it ({e})"));
        // Nothing is created beside a path that is not a file (a device, a symlink).
        check_replaceable(path).map_err(|e| broken(path, e.to_string()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_file::create_private_dir(dir).map_err(fail)?;
        }
        let file = private_file::open_lock(&lock_path(path)).map_err(fail)?;
        let info = file.metadata().map_err(fail)?;
        if !info.file_type().is_file() {
            return Err(broken(path, "its lock file is not a regular file".to_owned()));
        }
        check_trusted(&lock_path(path), &file, &info, Trust::Private)?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(MetadataLock { metadata: self, _file: Some(file) }),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(broken(path, format!("another process has held its lock for {} s", wait.as_secs())))
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(fail(e)),
            }
        }
    }
}

impl MetadataLock<'_> {
    /// Stores (or with `None` removes) the record of `handle`; every other record is kept.
    pub fn set(&self, handle: PersistentHandle, record: Option<&KeyRecord>) -> Result<()> {
        let Some(path) = &self.metadata.path else { return Ok(()) };
        let mut content = read(path, Trust::Private)?;
        match record {
            Some(r) => {
                let value = serde_json::to_value(r).map_err(|e| broken(path, e.to_string()))?;
                content.keys.insert(handle.to_string(), value);
            }
            None if content.keys.remove(&handle.to_string()).is_none() => return Ok(()),
            None => {}
        }
        let text = serde_json::to_string_pretty(&content).map_err(|e| broken(path, e.to_string()))?;
        write_atomically(path, text.as_bytes()).map_err(|e| broken(path, format!("cannot write it ({e})")))
    }
}

fn broken(path: &Path, reason: String) -> Error {
    Error::Metadata { path: path.display().to_string(), reason }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    path.with_file_name(name)
}

/// A record file read as input only, never written (`tpm-hmac pcsc enable --metadata`: another
/// user's file, whose record is checked against the TPM before it is used): a regular file, not a
/// symlink, at most [`MAX_FILE_SIZE`] bytes, whoever owns it. The error follows "it".
pub fn read_input(path: &Path) -> std::result::Result<FileContent, String> {
    read_checked(path, None).map_err(Error::file_reason)
}

/// Reads the file without following a symlink or blocking on a special file, if only those `trust`
/// names could have written it; a missing file is empty.
fn read(path: &Path, trust: Trust) -> Result<FileContent> {
    read_checked(path, Some(trust))
}

/// [`read`]; without `trust`, whoever may have written the file.
fn read_checked(path: &Path, trust: Option<Trust>) -> Result<FileContent> {
    let fail = |reason: String| broken(path, reason);
    let mut file = match private_file::open_no_follow(path) {
        Ok(file) => file,
        Err(e) if e.kind() == IoErrorKind::NotFound => return Ok(FileContent::default()),
        Err(e) if private_file::is_link(&e) => return Err(fail(e.to_string())),
        Err(e) => return Err(fail(format!("cannot open it ({e})"))),
    };
    let info = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !info.file_type().is_file() {
        return Err(fail(format!("it is {}, not a regular file", kind_of(&info.file_type()))));
    }
    if let Some(trust) = trust {
        check_trusted(path, &file, &info, trust)?;
    }
    if info.len() > MAX_FILE_SIZE {
        return Err(fail(format!(
            "it has {} bytes, more than the {MAX_FILE_SIZE} a metadata file may have",
            info.len()
        )));
    }
    let mut text = String::new();
    // The size can change between fstat and read: the read itself is bounded too.
    (&mut file).take(MAX_FILE_SIZE + 1).read_to_string(&mut text).map_err(|e| fail(format!("cannot read it ({e})")))?;
    FileContent::from_text(&text).map_err(fail)
}

#[cfg(unix)]
/// The file is the trust anchor of the pins: only those `trust` names may have written it (see
/// [`only_trusted_could_write`]). A private file of this user that is readable or writable by its
/// group (as files made under a umask of 002 by versions before 0600 was enforced) is made 0600;
/// a service's file is only read.
fn check_trusted(path: &Path, file: &File, info: &std::fs::Metadata, trust: Trust) -> Result<()> {
    only_trusted_could_write(path, info, trust).map_err(|why| broken(path, why))?;
    if trust == Trust::Private && info.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| broken(path, format!("cannot make it private (mode 600): {e}")))?;
    }
    Ok(())
}

/// On Windows the file is in the user's profile, whose inherited ACL keeps it the user's (see
/// [`private_file`]): there is no owner or mode to check.
#[cfg(windows)]
fn check_trusted(_path: &Path, _file: &File, _info: &std::fs::Metadata, _trust: Trust) -> Result<()> {
    Ok(())
}

#[cfg(unix)]
/// Whether only those `trust` names could have written the file at `path` (`info`: its own
/// metadata, from the open file), nor replaced it: `Err` says why not, in words that follow "it"
/// ("it is owned by ..."). Nothing is changed.
/// - [`Trust::Private`]: owned by this process's user, not writable by anyone else; its directory
///   not writable by anyone (unless sticky, as /tmp).
/// - [`Trust::ServiceReadOnly`]: owned by root or this process's user, writable by neither group
///   nor others; its directory owned by root or this user and writable by neither.
pub fn only_trusted_could_write(
    path: &Path,
    info: &std::fs::Metadata,
    trust: Trust,
) -> std::result::Result<(), String> {
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    let trusted_owner = |uid: u32| uid == me || (trust == Trust::ServiceReadOnly && uid == 0);
    let not_by = if trust == Trust::Private { "not by this user" } else { "not by root" };
    if !trusted_owner(info.uid()) {
        return Err(format!("it is owned by another user (uid {}), {not_by}", info.uid()));
    }
    // Who else may write: "anyone" for a user's file (its group is the user's own), "group or
    // others" for root's.
    let (others_write, who) = if trust == Trust::Private { (0o002, "anyone") } else { (0o022, "group or others") };
    if info.mode() & others_write != 0 {
        return Err(format!("it is writable by {who} (mode {:o})", info.mode() & 0o7777));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = std::fs::metadata(dir).map_err(|e| format!("cannot look at its directory ({e})"))?;
    let sticky_shared = trust == Trust::Private && dir.mode() & 0o1000 != 0;
    if dir.mode() & others_write != 0 && !sticky_shared {
        return Err(format!("its directory is writable by {who} (mode {:o})", dir.mode() & 0o7777));
    }
    if trust == Trust::ServiceReadOnly && !trusted_owner(dir.uid()) {
        return Err(format!("its directory is owned by another user (uid {}), {not_by}", dir.uid()));
    }
    Ok(())
}

/// Writes `bytes` to a new temporary file beside `path` (random name, `O_EXCL`, mode 0600),
/// fsyncs it, renames it over `path` and fsyncs the directory. Refuses to replace anything but
/// a regular file; the temporary file is removed on every error.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = write_temporary(path, bytes)?;
    install(&tmp, path)
}

/// Writes `bytes` to a new file beside `path` (random name, `O_EXCL`, `O_NOFOLLOW`, mode 0600) and
/// fsyncs it; [`install`] puts it in place. The file is removed again when writing fails.
pub fn write_temporary(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", random_suffix()?));
    let mut out = private_file::create_new_private(&tmp)?;
    if let Err(e) = out.write_all(bytes).and_then(|()| out.sync_all()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Renames `tmp` (made by [`write_temporary`]) over `path`, a regular file or nothing, and fsyncs
/// the directory; `tmp` is removed when that fails.
pub fn install(tmp: &Path, path: &Path) -> std::io::Result<()> {
    let renamed = check_replaceable(path).and_then(|()| std::fs::rename(tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(tmp);
        return renamed;
    }
    // The new file is in place; a directory that cannot be synced only weakens durability.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let _ = File::open(dir).and_then(|d| d.sync_all());
    Ok(())
}

/// A regular file or nothing: what may be replaced by a rename.
fn check_replaceable(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(info) if info.file_type().is_symlink() => Err(std::io::Error::other("it is a symbolic link")),
        Ok(info) if !info.file_type().is_file() => {
            Err(std::io::Error::other(format!("it is {}, not a regular file", kind_of(&info.file_type()))))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == IoErrorKind::NotFound || private_file::is_not_a_directory(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

fn random_suffix() -> std::io::Result<String> {
    let mut bytes = [0u8; 8];
    crate::random::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hex::encode(bytes))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn handle(value: u32) -> PersistentHandle {
        PersistentHandle::new(value).unwrap()
    }

    fn record() -> KeyRecord {
        KeyRecord {
            key_name: Some("000b34".into()),
            key_public: Some("0008".into()),
            storage_key_name: Some("000b12".into()),
            storage_key_public: None,
            pcrs: vec![7, 16],
            yubikey_mode: SlotMode::Fixed,
            label: Some("laptop".into()),
            ..KeyRecord::default()
        }
    }

    #[test]
    fn round_trip_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::at(dir.path().join("sub/keys.json"));
        let h = handle(0x8100_0100);
        assert_eq!(meta.get(h).unwrap(), None);
        meta.set(h, Some(&record())).unwrap();
        assert_eq!(meta.get(h).unwrap(), Some(record()));
        meta.set(h, None).unwrap();
        assert_eq!(meta.get(h).unwrap(), None);
    }

    #[test]
    fn file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/keys.json");
        Metadata::at(&path).set(handle(0x8100_0100), Some(&record())).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.iter().all(|n| !n.ends_with(".tmp")), "no temporary file left: {left:?}");
    }

    #[test]
    fn broken_files_are_errors_and_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(&path, b"{not json").unwrap();
        let meta = Metadata::at(&path);
        let h = handle(0x8100_0100);
        let e = meta.get(h).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        assert!(meta.set(h, Some(&record())).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"{not json", "the user's file is left as it was");
        assert_eq!(Metadata { path: None, trust: Trust::Private }.get(h).unwrap(), None);
    }

    #[test]
    fn records_it_does_not_understand_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let original =
            r#"{"keys":{"0x81000101":{"pcrs":"not a list"},"0x81000102":{"key_name":"00","future":1}},"v":2}"#;
        std::fs::write(&path, original).unwrap();
        let meta = Metadata::at(&path);
        assert!(meta.get(handle(0x8100_0101)).is_err(), "a malformed record is an error");
        meta.set(handle(0x8100_0100), Some(&record())).unwrap();
        let after: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(after["keys"]["0x81000101"]["pcrs"], "not a list");
        assert_eq!(after["keys"]["0x81000102"]["future"], 1);
        assert_eq!(after["v"], 2);
        assert_eq!(meta.get(handle(0x8100_0100)).unwrap(), Some(record()));
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"{}").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let h = handle(0x8100_0100);
        let e = Metadata::at(&link).get(h).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(Metadata::at(&link).set(h, Some(&record())).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"{}", "nothing written through the symlink");

        let fifo = dir.path().join("fifo.json");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let started = Instant::now();
        let e = Metadata::at(&fifo).get(h).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(1), "a FIFO must not block");
        assert!(Metadata::at(&fifo).set(h, Some(&record())).is_err());

        for (path, what) in [("/dev/zero", "a device"), ("/dev/null", "a device")] {
            let e = Metadata::at(path).get(h).unwrap_err();
            assert!(e.to_string().contains(what), "{path}: {e}");
        }
        let e = Metadata::at(dir.path()).get(h).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
    }

    #[test]
    fn files_others_could_have_written_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        Metadata::at(&path).set(handle(0x8100_0100), Some(&record())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = Metadata::at(&path).get(handle(0x8100_0100)).unwrap_err();
        assert!(e.to_string().contains("writable by anyone"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert_eq!(Metadata::at(&path).get(handle(0x8100_0100)).unwrap(), Some(record()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a group-writable file of this user is made private");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Metadata::at(&path).get(handle(0x8100_0100)).unwrap_err();
        assert!(e.to_string().contains("directory is writable by anyone"), "{e}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(Metadata::at(&path).get(handle(0x8100_0100)).unwrap(), Some(record()), "a sticky directory is fine");
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let file = File::create(&path).unwrap();
        file.set_len(1 << 30).unwrap(); // sparse: costs no disk
        let e = Metadata::at(&path).get(handle(0x8100_0100)).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }

    #[test]
    fn a_planted_temporary_file_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        // The old predictable name, planted as a symlink to another file.
        std::os::unix::fs::symlink(&victim, dir.path().join(format!("keys.json.{}.tmp", std::process::id()))).unwrap();
        Metadata::at(&path).set(handle(0x8100_0100), Some(&record())).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(Metadata::at(&path).get(handle(0x8100_0100)).unwrap(), Some(record()));
    }

    #[test]
    fn concurrent_writers_lose_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..10u32 {
                        Metadata::at(&path).set(handle(0x8100_0100 + t * 10 + i), Some(&record())).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let content = read(&path, Trust::Private).unwrap();
        assert_eq!(content.keys.len(), 40);
    }
}
