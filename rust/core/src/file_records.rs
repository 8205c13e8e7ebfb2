//! What the record file says about key files, on every platform and whichever path made them:
//! a new key file's serial, which record a file belongs to, listing recorded key files, and
//! removing a key file with its record. No TPM command is sent here.

use std::path::{Path, PathBuf};

use crate::address::{PersistentHandle, FILE_KEYS};
use crate::error::{Error, Result};
use crate::key::KeyInfo;
use crate::keyfile::{KeyFile, KeyFileError};
use crate::metadata::{FileContent, KeyRecord, Metadata};

/// Why a key file without a record in the user's record file is not used.
pub(crate) const NO_RECORD: &str = "no record of this key in your record file (keys made with `tpm-hmac create \
                                    --key-file` are recorded there; a file made by another program or user cannot \
                                    be used)";

/// Serials tried before giving up on finding a free one (there are 16 million).
const SERIAL_ATTEMPTS: usize = 16;

/// A serial of [`FILE_KEYS`] that no record uses, chosen at random.
pub(crate) fn free_serial(metadata: &Metadata) -> Result<PersistentHandle> {
    for _ in 0..SERIAL_ATTEMPTS {
        let mut bytes = [0u8; 4];
        crate::random::fill(&mut bytes)?;
        let value = FILE_KEYS.start() | (u32::from_be_bytes(bytes) & 0x00FF_FFFF);
        let handle = PersistentHandle::new(value)?;
        if metadata.get(handle)?.is_none() {
            return Ok(handle);
        }
    }
    Err(Error::NoFreeHandle { detail: "no free key-file serial found".to_owned() })
}

/// The serial and record of the key kept in the file at `path`: the record whose public area and
/// wrapped private part are the file's. A file without a record (made elsewhere, or its record
/// lost) is not used: it could be any key, and nothing pins the storage key it was made under.
pub(crate) fn recorded_file(metadata: &Metadata, path: &Path) -> Result<(PersistentHandle, KeyRecord)> {
    let file = KeyFile::read(path).map_err(|e| key_file_error(path, &e.to_string()))?;
    let content = metadata.content()?;
    let handle = content.key_file_serial(&file).ok_or_else(|| key_file_error(path, NO_RECORD))?;
    let record = content.record(handle).map_err(|why| key_file_error(path, &why))?;
    Ok((handle, record.ok_or_else(|| key_file_error(path, NO_RECORD))?))
}

/// Removes the record of the key file `handle` and its file (where `record` says it is, if that
/// file holds this key). `Ok(Some(path))`: the file could not be removed and is left at `path`.
pub(crate) fn delete_recorded(
    metadata: &Metadata,
    handle: PersistentHandle,
    record: KeyRecord,
) -> Result<Option<PathBuf>> {
    metadata.set(handle, None)?;
    let Some(path) = record.key_file.map(PathBuf::from) else { return Ok(None) };
    // Only the key file the record describes is removed, never whatever else the (edited)
    // record names.
    let holds_this_key = KeyFile::read(&path).is_ok_and(|file| {
        record.key_private.as_deref() == Some(&hex::encode(&file.private))
            && record.key_public.as_deref() == file.public.get(2..).map(hex::encode).as_deref()
    });
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ if holds_this_key && std::fs::remove_file(&path).is_ok() => Ok(None),
        _ => Ok(Some(path)),
    }
}

/// The key files `content` records, as their records describe them (with their labels).
pub(crate) fn recorded_file_keys(content: &FileContent) -> Vec<KeyInfo> {
    let mut keys = Vec::new();
    for (name, value) in &content.keys {
        let Ok(handle) = name.parse::<PersistentHandle>() else { continue };
        let Ok(record) = serde_json::from_value::<KeyRecord>(value.clone()) else { continue };
        if !handle.is_file_key() || record.key_private.is_none() {
            continue;
        }
        if let Some(mut info) = record.recorded_key(handle) {
            info.label = record.shown_label();
            keys.push(info);
        }
    }
    keys
}

/// A TPM2B of `bytes`: their size, big-endian, then the bytes.
pub(crate) fn tpm2b(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(crate) fn key_file_error(path: &Path, reason: &str) -> Error {
    Error::KeyFile { path: path.display().to_string(), reason: reason.to_owned() }
}

pub(crate) fn not_loadable(handle: PersistentHandle, reason: &str) -> Error {
    Error::KeyFile { path: handle.to_string(), reason: reason.to_owned() }
}

impl From<KeyFileError> for Error {
    fn from(e: KeyFileError) -> Error {
        Error::KeyFile { path: String::new(), reason: e.to_string() }
    }
}
