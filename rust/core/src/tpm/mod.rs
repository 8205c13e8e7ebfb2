//! Opening a TPM: the TCTI comes from the caller, else from `TPM2TOOLS_TCTI` / `TCTI` /
//! `TEST_TCTI`, else from a short default search. Also the retry of transient TPM answers.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::ErrorKind as IoErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::str::FromStr;
use std::thread::sleep;
use std::time::Duration;

use tss_esapi::handles::ObjectHandle;
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::Context;

use crate::address::PersistentHandle;
use crate::direct::Direct;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::pinned::PinnedKey;
use crate::rc;
use crate::session::Session;

mod challenge;
mod da;
mod inventory;
mod keys;
mod parent;
mod pcr;
mod pinned;
mod session;
mod store;

/// Environment variables read for the TCTI, in tpm2-tools' order.
pub const TCTI_ENV_VARS: [&str; 3] = ["TPM2TOOLS_TCTI", "TCTI", "TEST_TCTI"];

/// Where we look when nothing is configured: the kernel's resource manager first (what
/// systemd uses), then the tpm2-abrmd daemon, then the raw device.
const DEFAULT_SEARCH: [&str; 3] = ["device:/dev/tpmrm0", "tabrmd:", "device:/dev/tpm0"];

/// How often a command that got TPM_RC_RETRY / YIELDED / TESTING is sent again.
const TRANSIENT_RETRIES: u32 = 20;

/// An open connection to a TPM.
pub struct Tpm {
    ctx: Context,
    /// The TCTI in use, for messages.
    tcti: String,
    /// ESYS handles of persistent keys used before, so a warm challenge is one TPM command.
    known: HashMap<PersistentHandle, ObjectHandle>,
    /// The encrypted session for the next challenge, when one is kept.
    session: Option<Session>,
    /// Keep the session from one challenge to the next (see `session`).
    session_reuse: bool,
    /// Keys checked against their metadata records (once per connection and key).
    records: HashMap<PersistentHandle, PinnedKey>,
    /// Whether challenges run in an encrypted session (on unless switched off for debugging).
    bus_encryption: bool,
    /// Challenges to keys without PIN or policy in sessions computed in Rust (`direct`), when
    /// the TCTI allows; `None` until first used, or after its connection failed.
    direct: Option<Direct>,
    direct_path: bool,
    metadata: Metadata,
}

impl Tpm {
    /// Opens the TPM named by `tcti` (e.g. `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`),
    /// or by the environment, or found by the default search.
    pub fn open(tcti: Option<&str>) -> Result<Tpm> {
        if let Some(conf) = tcti.map(str::to_owned).or_else(configured_tcti) {
            return Self::open_conf(&conf);
        }
        let mut first_error = None;
        for conf in DEFAULT_SEARCH {
            if let Some(device) = conf.strip_prefix("device:") {
                if !Path::new(device).exists() {
                    continue;
                }
            }
            // tpm2-abrmd is reached over the system D-Bus; without one its module only prints
            // glib's complaint to stderr.
            if conf.starts_with("tabrmd") && !system_bus_present() {
                continue;
            }
            match Self::open_conf(conf) {
                Ok(tpm) => return Ok(tpm),
                Err(e @ Error::PermissionDenied { .. }) => return Err(e),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| Error::NoTpm {
            tcti: "the default search".to_owned(),
            detail: "no /dev/tpmrm0, no tpm2-abrmd, no TCTI set in TPM2TOOLS_TCTI".to_owned(),
        }))
    }

    fn open_conf(conf: &str) -> Result<Tpm> {
        let conf = conf.trim();
        let name_conf = parse_tcti(conf)?;
        if let TctiNameConf::Device(_) = &name_conf {
            check_device_access(device_path(conf))?;
        }
        let ctx = Context::new(name_conf)
            .map_err(|e| Error::NoTpm { tcti: conf.to_owned(), detail: tcti_detail(conf, &e) })?;
        Ok(Tpm {
            ctx,
            tcti: conf.to_owned(),
            known: HashMap::new(),
            session: None,
            session_reuse: behind_resource_manager(conf),
            records: HashMap::new(),
            bus_encryption: true,
            direct: None,
            direct_path: true,
            metadata: Metadata::default_location(),
        })
    }

    /// A new connection to the same TPM, after the old one broke (tpm2-tss cannot reuse it).
    fn reconnect(&mut self) -> Result<()> {
        let fresh = Self::open_conf(&self.tcti)?;
        self.ctx = fresh.ctx;
        self.known.clear();
        self.records.clear();
        self.session = None;
        self.direct = None;
        Ok(())
    }

    /// Switches the encrypted session of challenges off (only to debug or to measure it: the
    /// response then crosses the bus in clear).
    pub fn set_bus_encryption(&mut self, on: bool) {
        if !on {
            self.end_session();
        }
        self.bus_encryption = on;
    }

    /// Keeps the encrypted session from one challenge to the next: a warm challenge is then one
    /// TPM command instead of two. On by default behind a resource manager
    /// ([`behind_resource_manager`]); elsewhere only for callers that drop the `Tpm` before they
    /// exit, so the session is flushed: a TPM without a resource manager has only three slots.
    pub fn set_session_reuse(&mut self, on: bool) {
        if !on {
            self.end_session();
        }
        self.session_reuse = on;
        // Opened again with the new setting (its kept session is flushed).
        self.direct = None;
    }

    /// Uses tpm2-tss's ESYS for every challenge when off (to compare the two paths, or to
    /// measure them); on by default.
    pub fn set_direct_path(&mut self, on: bool) {
        self.direct_path = on;
        if !on {
            self.direct = None;
        }
    }

    /// Uses `metadata` instead of the per-user default file.
    pub fn set_metadata(&mut self, metadata: Metadata) {
        self.metadata = metadata;
        self.records.clear();
    }

    /// The metadata file this connection checks keys against.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The TCTI this connection uses.
    pub fn tcti(&self) -> &str {
        &self.tcti
    }

    /// Runs one TPM operation, sending it again while the TPM answers that it is busy.
    fn call<T>(
        &mut self,
        mut f: impl FnMut(&mut Context) -> tss_esapi::Result<T>,
    ) -> std::result::Result<T, (u32, tss_esapi::Error)> {
        let mut attempt = 0;
        loop {
            match f(&mut self.ctx) {
                Ok(value) => return Ok(value),
                Err(e) => {
                    let code = rc_of(&e);
                    if rc::is_transient(code) && attempt < TRANSIENT_RETRIES {
                        attempt += 1;
                        sleep(Duration::from_millis(5 * u64::from(attempt)));
                        continue;
                    }
                    return Err((code, e));
                }
            }
        }
    }

    /// [`Tpm::call`] with the failure turned into our error.
    fn run<T>(&mut self, operation: &'static str, f: impl FnMut(&mut Context) -> tss_esapi::Result<T>) -> Result<T> {
        self.call(f).map_err(|(_, e)| rc::classify(operation, e, &self.tcti))
    }
}

/// True for the kernel's resource manager (/dev/tpmrm*) and tpm2-abrmd: they flush a client's
/// sessions when its connection closes, so a session may be kept from one challenge to the next
/// even by a process that may end without cleaning up (KeePassXC). A raw TPM or a simulator has
/// only three session slots, and a session left there stays until it is flushed.
pub fn behind_resource_manager(conf: &str) -> bool {
    let conf = conf.trim();
    conf.starts_with("tabrmd") || conf.strip_prefix("device:").is_some_and(|path| path.contains("tpmrm"))
}

/// Whether a D-Bus system bus may answer (where tpm2-abrmd registers by default).
fn system_bus_present() -> bool {
    std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_some() || Path::new("/run/dbus/system_bus_socket").exists()
}

/// The raw TSS2_RC of a tss-esapi error (0 for wrapper errors).
pub(crate) fn rc_of(e: &tss_esapi::Error) -> u32 {
    match e {
        tss_esapi::Error::Tss2Error(code) => rc::raw(code),
        tss_esapi::Error::WrapperError(_) => 0,
    }
}

/// What went wrong opening `conf`, in words: tpm2-tss's loader answers with bare codes.
fn tcti_detail(conf: &str, e: &tss_esapi::Error) -> String {
    const IO_ERROR: u32 = 0x0A;
    const NOT_SUPPORTED: u32 = 0x15;
    let tss_esapi::Error::Tss2Error(code) = e else { return e.to_string() };
    let raw = rc::raw(code);
    match raw & 0xFFFF {
        IO_ERROR => format!("connection failed, 0x{raw:08X}"),
        NOT_SUPPORTED => {
            let module = conf.split(':').next().unwrap_or(conf);
            format!("the TCTI module is not installed (Debian package libtss2-tcti-{module}0), 0x{raw:08X}")
        }
        _ => format!("0x{raw:08X}"),
    }
}

/// A TCTI configuration string (`device:/dev/tpmrm0`, `tabrmd:`, `swtpm:host=…,port=…`, …).
///
/// tss-esapi 7 keeps only the options it knows and drops the rest without a word: `swtpm:path=…`
/// (tpm2-tss's unix socket) would open swtpm on localhost:2321, another TPM than the one named.
/// Such a string is refused instead.
pub fn parse_tcti(conf: &str) -> Result<TctiNameConf> {
    let trimmed = conf.trim();
    let (module, options) = trimmed.split_once(':').unwrap_or((trimmed, ""));
    let understood: &[&str] = match module {
        "swtpm" | "mssim" => &["host", "port"],
        "tabrmd" => &["bus_name", "bus_type"],
        _ => &[],
    };
    let dropped = options.split(',').filter(|o| !understood.is_empty() && !o.is_empty()).find(|option| {
        let key = option.split_once('=').map_or(*option, |(key, _)| key);
        !understood.contains(&key)
    });
    if let Some(option) = dropped {
        let (tcti, option, understood) = (conf.to_owned(), option.to_owned(), understood.join(", "));
        return Err(Error::TctiOption { tcti, option, understood });
    }
    TctiNameConf::from_str(trimmed).map_err(|_| Error::UnknownTcti { tcti: conf.to_owned() })
}

/// The first TCTI set in the environment, if any.
pub fn configured_tcti() -> Option<String> {
    TCTI_ENV_VARS.iter().find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
}

/// The device of a `device:` TCTI (tss-esapi keeps DeviceConfig's path private).
fn device_path(conf: &str) -> &str {
    match conf.strip_prefix("device:") {
        Some(path) if !path.is_empty() => path,
        _ => "/dev/tpm0",
    }
}

/// Opens the device once ourselves so that "permission denied" and "no such device" get
/// their own messages instead of an opaque TCTI code.
fn check_device_access(device: &str) -> Result<()> {
    match OpenOptions::new().read(true).write(true).open(device) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == IoErrorKind::PermissionDenied => Err(Error::PermissionDenied {
            device: device.to_owned(),
            group: std::fs::metadata(device).ok().and_then(|m| group_name(m.gid())),
        }),
        Err(e) if e.kind() == IoErrorKind::NotFound => {
            Err(Error::NoTpm { tcti: format!("device:{device}"), detail: format!("{device} does not exist") })
        }
        Err(e) => Err(Error::NoTpm { tcti: format!("device:{device}"), detail: e.to_string() }),
    }
}

/// The name of group `gid` from /etc/group (the TPM device is usually group "tss").
fn group_name(gid: u32) -> Option<String> {
    account_name("/etc/group", gid)
}

/// The name of `id` in an /etc/passwd or /etc/group style `database`, for messages about who
/// owns a TPM device.
pub fn account_name(database: &str, id: u32) -> Option<String> {
    let entries = std::fs::read_to_string(database).ok()?;
    entries.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let found = fields.nth(1)?.parse::<u32>().ok()?;
        (found == id).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcti_options_tss_esapi_would_drop_are_refused() {
        assert!(parse_tcti("swtpm:host=127.0.0.1,port=2321").is_ok());
        assert!(parse_tcti("swtpm:").is_ok());
        assert!(parse_tcti("tabrmd:bus_type=session").is_ok());
        assert!(parse_tcti("device:/dev/tpmrm0").is_ok());
        let refused = |conf| match parse_tcti(conf) {
            Err(Error::TctiOption { option, .. }) => option,
            other => panic!("{conf}: {other:?}"),
        };
        // tss-esapi would open localhost:2321 for these: another TPM than the one named
        assert_eq!(refused("swtpm:path=/run/swtpm/tpm.sock"), "path=/run/swtpm/tpm.sock");
        assert_eq!(refused("mssim:host=127.0.0.1,prot=2321"), "prot=2321");
        assert_eq!(refused("tabrmd:bus_type=session,bus=x"), "bus=x");
        let message = parse_tcti("swtpm:path=/s").unwrap_err().to_string();
        assert!(message.contains("\"path=/s\"") && message.contains("with host, port only"), "{message}");
    }

    #[test]
    fn resource_managers_are_told_by_their_tcti() {
        assert!(behind_resource_manager("device:/dev/tpmrm0"));
        assert!(behind_resource_manager("tabrmd:bus_type=session"));
        assert!(behind_resource_manager("tabrmd:"));
        assert!(!behind_resource_manager("device:/dev/tpm0"));
        assert!(!behind_resource_manager("swtpm:host=127.0.0.1,port=2321"));
        assert!(!behind_resource_manager("mssim:"));
    }
}
