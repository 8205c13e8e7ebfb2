//! Finding and loading the TPM backend (libkeepassxc_tpm_backend.so) with libloading, once per
//! process. Loading a library runs its code inside KeePassXC, so only places an installer
//! controls are searched, as KeePassXC's own `Resources::pluginPath` does:
//! 1. `$KEEPASSXC_TPM_BACKEND` (a file; when set, nothing else is tried). It is ignored in a
//!    secure-execution process (setuid, setgid, capabilities), exactly where the dynamic loader
//!    ignores LD_PRELOAD, so it gives no power LD_PRELOAD does not already give;
//! 2. the install directory the build set in `KEEPASSXC_TPM_BACKEND_DIR` (the CMake module sets
//!    `<libdir>/keepassxc`, e.g. /usr/lib/x86_64-linux-gnu/keepassxc; never a build tree);
//! 3. next to the executable, and in `<exe>/../lib/keepassxc` (AppImages, portable builds).
//!
//! The first file that exists is the one: a file that fails to load is reported, never a
//! reason to try the next place. A file or directory that is writable by group or others, or
//! owned by a user other than root or the one running KeePassXC, is refused.
//!
//! When the backend, or the tpm2-tss libraries it needs, cannot be loaded, every call reports
//! "no TPM" with the reason and what to install.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use keepassxc_tpm_abi::{status, BackendV1, Buffer, ABI_VERSION, ENTRY_SYMBOL, LIBRARY_NAME, VERSION_SYMBOL};
use libloading::Library;

/// The environment variable that names the backend file.
pub const BACKEND_ENV: &str = "KEEPASSXC_TPM_BACKEND";

/// A loaded backend: its table and the library that keeps it mapped.
pub struct Backend {
    table: &'static BackendV1,
    _library: Library,
}

type Failure = (u32, String);

/// The backend, loaded on first use; the reason it is unavailable otherwise.
pub fn backend() -> Result<&'static Backend, Failure> {
    static BACKEND: OnceLock<Result<Backend, String>> = OnceLock::new();
    BACKEND.get_or_init(load).as_ref().map_err(|reason| (status::NO_TPM, reason.clone()))
}

/// Where the backend may be, in order.
fn candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(dir) = option_env!("KEEPASSXC_TPM_BACKEND_DIR").filter(|d| Path::new(d).is_absolute()) {
        paths.push(PathBuf::from(dir).join(LIBRARY_NAME));
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(PathBuf::from)) {
        paths.push(dir.join(LIBRARY_NAME));
        paths.push(dir.join("../lib/keepassxc").join(LIBRARY_NAME));
    }
    paths
}

fn load() -> Result<Backend, String> {
    // SAFETY: getauxval has no preconditions; AT_SECURE is set for setuid/setgid/capability
    // processes, where ld.so ignores LD_PRELOAD too.
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    if let Some(file) = std::env::var_os(BACKEND_ENV).filter(|v| !v.is_empty() && !secure) {
        return load_from(&[PathBuf::from(file)]);
    }
    load_from(&candidates())
}

/// Loads the first of `paths` that exists, or says why none could be.
pub fn load_from(paths: &[PathBuf]) -> Result<Backend, String> {
    let Some(path) = paths.iter().find(|p| p.exists()) else {
        let looked: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "TPM support is not installed: {LIBRARY_NAME} was not found (looked in {}; set {BACKEND_ENV} to its path)",
            looked.join(", ")
        ));
    };
    let file = open_trusted(path)?;
    open(path, &file)
}

/// Opens the library for loading, refusing one that someone other than root or this user could
/// have put or changed. It is then loaded through this descriptor (/proc/self/fd), so the file
/// checked is the file loaded, whatever happens to the path meanwhile.
fn open_trusted(path: &Path) -> Result<File, String> {
    let cannot = |e: std::io::Error| format!("cannot use the TPM backend {}: {e}", path.display());
    let real = std::fs::canonicalize(path).map_err(cannot)?;
    let file =
        OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&real).map_err(cannot)?;
    let dir = real.parent().unwrap_or(&real);
    let checks = [(real.as_path(), file.metadata().map_err(cannot)?), (dir, std::fs::metadata(dir).map_err(cannot)?)];
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for (place, info) in checks {
        if info.uid() != 0 && info.uid() != me {
            return Err(format!(
                "refusing to load the TPM backend {}: {} is owned by another user (uid {})",
                real.display(),
                place.display(),
                info.uid()
            ));
        }
        if info.mode() & 0o022 != 0 {
            return Err(format!(
                "refusing to load the TPM backend {}: {} is writable by group or others (mode {:o})",
                real.display(),
                place.display(),
                info.mode() & 0o7777
            ));
        }
    }
    Ok(file)
}

fn open(path: &Path, file: &File) -> Result<Backend, String> {
    let shown = path.display().to_string();
    let by_descriptor = format!("/proc/self/fd/{}", file.as_raw_fd());
    // SAFETY: loading runs the library's initialisers; the backend is our own Rust cdylib,
    // whose only initialisers are those of Rust's runtime and of tpm2-tss, in a file only root
    // or this user can write (checked on this very descriptor above).
    let library = unsafe { Library::new(&by_descriptor) }.map_err(|e| missing_dependency(&shown, &e.to_string()))?;
    // SAFETY: the symbols have the signatures keepassxc-tpm-abi declares; the version is read
    // through a function that takes nothing and returns a u32, which any version provides.
    let version = unsafe { library.get::<extern "C" fn() -> u32>(VERSION_SYMBOL) }
        .map(|f| f())
        .map_err(|_| format!("{shown} is not a keepassxc-tpm backend"))?;
    if version != ABI_VERSION {
        return Err(format!(
            "{shown} speaks interface version {version}, this KeePassXC needs version {ABI_VERSION}: install the \
             keepassxc-tpm backend built with this KeePassXC"
        ));
    }
    // SAFETY: checked above that the library serves ABI_VERSION, whose entry point returns a
    // pointer to a static table that lives as long as the library, which we never unload.
    let table = unsafe { library.get::<extern "C" fn() -> *const BackendV1>(ENTRY_SYMBOL) }
        .map(|f| f())
        .map_err(|_| format!("{shown} lacks its entry point"))?;
    // SAFETY: the pointer is null or points to the backend's static table.
    let table = unsafe { table.as_ref() }.ok_or_else(|| format!("{shown} returned no function table"))?;
    // The table says its version too: a library whose two answers differ is not one we built.
    if table.abi_version != ABI_VERSION {
        return Err(format!(
            "{shown} returned a function table of interface version {}, not {ABI_VERSION}: it is not a keepassxc-tpm \
             backend this KeePassXC can use",
            table.abi_version
        ));
    }
    Ok(Backend { table, _library: library })
}

fn missing_dependency(path: &str, error: &str) -> String {
    if error.contains("libtss2") {
        format!(
            "TPM support needs the tpm2-tss libraries, which are missing ({error}); install them \
             (Debian/Ubuntu: libtss2-esys-3.0.2-0 libtss2-tctildr0 libtss2-tcti-device0)"
        )
    } else {
        format!("cannot load the TPM backend {path}: {error}")
    }
}

impl Backend {
    pub fn list_keys(&self) -> Result<String, Failure> {
        let mut capacity = 4096;
        loop {
            let mut keys = vec![0u8; capacity];
            let mut message = [0u8; 1024];
            let mut keys_buffer = Buffer { ptr: keys.as_mut_ptr(), cap: keys.len(), len: 0 };
            let mut message_buffer = Buffer { ptr: message.as_mut_ptr(), cap: message.len(), len: 0 };
            // SAFETY: both buffers point to live arrays of the capacities given.
            let code = unsafe { (self.table.list_keys)(&mut keys_buffer, &mut message_buffer) };
            if code == status::BUFFER_TOO_SMALL && keys_buffer.len > capacity {
                capacity = keys_buffer.len;
                continue;
            }
            if code != status::OK {
                return Err((code, text(&message, message_buffer.len)));
            }
            return Ok(text(&keys, keys_buffer.len));
        }
    }

    pub fn challenge(
        &self,
        serial: u32,
        slot: i32,
        challenge: &[u8],
        pin: Option<&[u8]>,
        response: &mut [u8],
    ) -> Result<usize, Failure> {
        let mut message = [0u8; 1024];
        let mut response_buffer = Buffer { ptr: response.as_mut_ptr(), cap: response.len(), len: 0 };
        let mut message_buffer = Buffer { ptr: message.as_mut_ptr(), cap: message.len(), len: 0 };
        let (pin_ptr, pin_len) = pin.map_or((std::ptr::null(), 0), |p| (p.as_ptr(), p.len()));
        // SAFETY: the slices and buffers are live for the call and their lengths are given.
        let code = unsafe {
            (self.table.challenge)(
                serial,
                slot,
                challenge.as_ptr(),
                challenge.len(),
                pin_ptr,
                pin_len,
                &mut response_buffer,
                &mut message_buffer,
            )
        };
        if code == status::OK {
            Ok(response_buffer.len.min(response.len()))
        } else {
            Err((code, text(&message, message_buffer.len)))
        }
    }
}

fn text(bytes: &[u8], len: usize) -> String {
    String::from_utf8_lossy(&bytes[..len.min(bytes.len())]).into_owned()
}
