//! Opening a TPM: the TCTI comes from the caller, else from `TPM2TOOLS_TCTI` / `TCTI` /
//! `TEST_TCTI`, else from a short default search ([`Tcti`]). Where the direct path speaks the
//! TCTI, tpm2-tss's ESYS context opens only when a command needs it (a key with a PIN or a
//! policy, creating keys, any doubt), not for listing and challenging. Also the retry of
//! transient TPM answers.

use std::fs::OpenOptions;
use std::io::ErrorKind as IoErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use tss_esapi::handles::ObjectHandle;
use tss_esapi::Context;

use crate::address::PersistentHandle;
use crate::direct::{Direct, Fallback};
use crate::error::{Error, Result};
use crate::metadata::{FileContent, Metadata};
use crate::options::TpmOptions;
use crate::rc;
use crate::tcti::Tcti;
use crate::tpm::session::EsysSession;
use known::KnownKeys;

mod challenge;
pub(crate) mod da;
mod file_keys;
pub(crate) mod inventory;
mod keys;
mod known;
mod listing;
pub(crate) mod parent;
pub mod pcr;
pub(crate) mod pinned;
pub(crate) mod session;

/// How often a command that got TPM_RC_RETRY / YIELDED / TESTING is sent again.
const TRANSIENT_RETRIES: u32 = 20;

/// An open connection to a TPM.
pub struct Tpm {
    /// tpm2-tss's ESYS context, opened at its first use ([`Tpm::esys`]): the direct path and
    /// listing speak the TCTI themselves and need none.
    ctx: Option<Context>,
    /// The TCTI in use.
    tcti: Tcti,
    /// Keys this connection resolved and checked against their records.
    keys: KnownKeys,
    /// The encrypted sessions for the next challenges, when kept: an HMAC session (`[0]`, keys
    /// authorised by their authValue) and a policy session (`[1]`, keys with the empty policy).
    sessions: [Option<EsysSession>; 2],
    /// Keep the session from one challenge to the next (see `session`).
    session_reuse: bool,
    /// Whether challenges run in an encrypted session (on unless switched off for debugging).
    bus_encryption: bool,
    /// Challenges to keys without PIN or policy in sessions computed in Rust (`direct`), when
    /// the TCTI allows; `None` until first used, or after its connection failed.
    direct: Option<Direct>,
    direct_path: bool,
    metadata: Metadata,
    /// The record file as read once for the operation under way (a listing), when one is.
    snapshot: Option<FileContent>,
}

impl Tpm {
    /// Opens the TPM `options` name (e.g. `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`),
    /// or the one the environment names, or the first the default search finds, with `options`'
    /// settings for the connection's whole life.
    pub fn open(options: &TpmOptions) -> Result<Tpm> {
        let configured = match &options.tcti {
            Some(conf) => Some(Tcti::parse(conf)),
            None => Tcti::from_environment(),
        };
        if let Some(tcti) = configured {
            return Self::open_tcti(tcti?, options);
        }
        let mut first_error = None;
        for tcti in Tcti::default_search() {
            match Self::open_tcti(tcti, options) {
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

    fn open_tcti(tcti: Tcti, options: &TpmOptions) -> Result<Tpm> {
        if let Some(device) = tcti.device() {
            check_device_access(device)?;
        }
        // Where the direct path speaks the TCTI, a reachable TPM is all that opening needs;
        // elsewhere ESYS opens now, so that an unreachable TPM is reported here either way.
        let session_reuse = options.session_reuse.unwrap_or_else(|| tcti.flushes_on_close());
        let direct = if options.direct_path { Direct::open(&tcti, session_reuse) } else { None };
        let ctx = match &direct {
            Some(direct) => {
                direct.check_reachable().map_err(|e| Error::NoTpm {
                    tcti: tcti.to_string(),
                    detail: format!("connection failed ({e}), 0x{:08X}", rc::TCTI_IO_ERROR),
                })?;
                None
            }
            None => Some(context(&tcti)?),
        };
        Ok(Tpm {
            ctx,
            keys: KnownKeys::default(),
            sessions: [None, None],
            session_reuse,
            tcti,
            bus_encryption: options.bus_encryption,
            direct,
            direct_path: options.direct_path,
            metadata: options.metadata.clone().unwrap_or_else(Metadata::default_location),
            snapshot: None,
        })
    }

    /// A new connection to the same TPM, after the old one broke (tpm2-tss cannot reuse it).
    fn reconnect(&mut self) -> Result<()> {
        self.ctx = Some(context(&self.tcti)?);
        self.keys.clear();
        self.sessions = [None, None];
        self.direct = None;
        Ok(())
    }

    /// Runs `f` on the direct path's connection, opened now if need be; `None` where the direct
    /// path does not speak the TCTI (or is switched off). A failed transport drops the connection:
    /// the next use opens a new one.
    fn on_direct<T>(
        &mut self,
        f: impl FnOnce(&mut Direct) -> std::result::Result<T, Fallback>,
    ) -> Option<std::result::Result<T, Fallback>> {
        if !self.direct_path {
            return None;
        }
        let direct = match &mut self.direct {
            Some(direct) => direct,
            none => none.insert(Direct::open(&self.tcti, self.session_reuse)?),
        };
        let result = f(direct);
        if matches!(result, Err(Fallback::Io)) {
            self.direct = None;
        }
        Some(result)
    }

    /// The record of the key at `handle`: from the operation's snapshot of the record file when
    /// one is taken ([`Tpm::with_snapshot`]), else read now.
    fn record(&self, handle: PersistentHandle) -> Result<Option<crate::metadata::KeyRecord>> {
        match &self.snapshot {
            Some(content) => content.record(handle).map_err(|reason| Error::Metadata {
                path: self.metadata.path().map_or_else(String::new, |p| p.display().to_string()),
                reason,
            }),
            None => self.metadata.get(handle),
        }
    }

    /// Runs `f` with the record file read once for all of it (a listing asks for every key's
    /// record, some twice); a file that cannot be read is read again by each question, which
    /// then says why.
    fn with_snapshot<T>(&mut self, f: impl FnOnce(&mut Tpm) -> T) -> T {
        self.snapshot = self.metadata.content().ok();
        let result = f(self);
        self.snapshot = None;
        result
    }

    /// The metadata file this connection checks keys against.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The TCTI this connection uses.
    pub fn tcti(&self) -> &Tcti {
        &self.tcti
    }

    /// The ESYS context, opened now if it was not yet.
    fn esys(&mut self) -> Result<&mut Context> {
        match &mut self.ctx {
            Some(ctx) => Ok(ctx),
            empty => Ok(empty.insert(context(&self.tcti)?)),
        }
    }

    /// The ESYS context if it is open: what cleans up after a command needs no new one.
    fn opened(&mut self) -> Option<&mut Context> {
        self.ctx.as_mut()
    }

    /// Flushes a transient object or session ESYS loaded (none was, without a context).
    fn flush(&mut self, object: ObjectHandle) {
        if let Some(ctx) = self.opened() {
            let _ = ctx.flush_context(object);
        }
    }

    /// Drops ESYS's record of `object` without a TPM command.
    fn close(&mut self, mut object: ObjectHandle) {
        if let Some(ctx) = self.opened() {
            let _ = ctx.tr_close(&mut object);
        }
    }

    /// Runs one TPM operation, sending it again while the TPM answers that it is busy. The
    /// context must be open ([`Tpm::esys`]): every caller resolved a key or ran a command first.
    fn call<T>(
        &mut self,
        mut f: impl FnMut(&mut Context) -> tss_esapi::Result<T>,
    ) -> std::result::Result<T, (u32, tss_esapi::Error)> {
        let not_open = || (0, tss_esapi::Error::WrapperError(tss_esapi::WrapperErrorKind::InternalError));
        let mut attempt = 0;
        loop {
            let ctx = self.ctx.as_mut().ok_or_else(not_open)?;
            match f(ctx) {
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
        self.esys()?;
        self.call(f).map_err(|(_, e)| rc::classify(operation, e, self.tcti.as_str()))
    }
}

/// The raw TSS2_RC of a tss-esapi error (0 for wrapper errors).
pub(crate) fn rc_of(e: &tss_esapi::Error) -> u32 {
    match e {
        tss_esapi::Error::Tss2Error(code) => rc::raw(code),
        tss_esapi::Error::WrapperError(_) => 0,
    }
}

/// A new ESYS context on `tcti`.
fn context(tcti: &Tcti) -> Result<Context> {
    Context::new(tcti.name_conf()?).map_err(|e| Error::NoTpm { tcti: tcti.to_string(), detail: tcti_detail(tcti, &e) })
}

/// What went wrong opening `tcti`, in words: tpm2-tss's loader answers with bare codes.
fn tcti_detail(tcti: &Tcti, e: &tss_esapi::Error) -> String {
    const IO_ERROR: u32 = 0x0A;
    const NOT_SUPPORTED: u32 = 0x15;
    let tss_esapi::Error::Tss2Error(code) = e else { return e.to_string() };
    let raw = rc::raw(code);
    match raw & 0xFFFF {
        IO_ERROR => format!("connection failed, 0x{raw:08X}"),
        NOT_SUPPORTED => {
            format!("the TCTI module is not installed (Debian package {}), 0x{raw:08X}", tcti.debian_package())
        }
        _ => format!("0x{raw:08X}"),
    }
}

/// Opens the device once ourselves so that "permission denied" and "no such device" get
/// their own messages instead of an opaque TCTI code.
fn check_device_access(device: &Path) -> Result<()> {
    let shown = device.display();
    match OpenOptions::new().read(true).write(true).open(device) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == IoErrorKind::PermissionDenied => Err(Error::PermissionDenied {
            device: shown.to_string(),
            group: std::fs::metadata(device).ok().and_then(|m| crate::os::group_name(m.gid())),
        }),
        Err(e) if e.kind() == IoErrorKind::NotFound => {
            Err(Error::NoTpm { tcti: format!("device:{shown}"), detail: format!("{shown} does not exist") })
        }
        Err(e) => Err(Error::NoTpm { tcti: format!("device:{shown}"), detail: e.to_string() }),
    }
}
