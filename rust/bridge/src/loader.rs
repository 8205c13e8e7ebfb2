//! Finding and loading the TPM backend (libkeepassxc_tpm_backend.so) with libloading, once per
//! process. Where it is looked for, in order:
//! 1. `$KEEPASSXC_TPM_BACKEND` (a file; when set, nothing else is tried);
//! 2. the directories the build set in `KEEPASSXC_TPM_BACKEND_DIR` (the CMake module sets the
//!    install directory, e.g. /usr/lib/x86_64-linux-gnu/keepassxc, and its build tree's);
//! 3. next to the executable, and in `<exe>/../lib/keepassxc` (AppImages, portable builds);
//! 4. the dynamic loader's own search (LD_LIBRARY_PATH, ld.so.cache).
//!
//! When it, or the tpm2-tss libraries it needs, cannot be loaded, every call reports "no TPM"
//! with the reason and what to install.
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use keepassxc_tpm_abi::{status, BackendV1, Buffer, ABI_VERSION, ENTRY_SYMBOL, LIBRARY_NAME, VERSION_SYMBOL};
use libloading::Library;

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

fn candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    // Colon-separated, like PATH: the CMake module gives the install directory and the build tree's.
    for dir in option_env!("KEEPASSXC_TPM_BACKEND_DIR").unwrap_or("").split(':').filter(|d| !d.is_empty()) {
        paths.push(PathBuf::from(dir).join(LIBRARY_NAME));
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(PathBuf::from)) {
        paths.push(dir.join(LIBRARY_NAME));
        paths.push(dir.join("../lib/keepassxc").join(LIBRARY_NAME));
    }
    paths
}

fn load() -> Result<Backend, String> {
    // Set explicitly: that file or nothing.
    if let Some(file) = std::env::var_os("KEEPASSXC_TPM_BACKEND").filter(|v| !v.is_empty()) {
        return open(&file).map_err(|why| {
            why.unwrap_or_else(|| format!("KEEPASSXC_TPM_BACKEND={} cannot be loaded", file.to_string_lossy()))
        });
    }
    // A file that exists but does not load (a missing libtss2, a wrong version) is the reason
    // worth reporting; "not found" only when none exists anywhere.
    let mut reason = None;
    let existing = candidates().into_iter().filter(|p| p.exists());
    for path in existing.map(|p| p.into_os_string()).chain([LIBRARY_NAME.into()]) {
        match open(&path) {
            Ok(backend) => return Ok(backend),
            Err(Some(why)) => {
                reason.get_or_insert(why);
            }
            Err(None) => {}
        }
    }
    Err(reason.unwrap_or_else(|| {
        format!("TPM support is not installed: {LIBRARY_NAME} was not found (set KEEPASSXC_TPM_BACKEND to its path)")
    }))
}

/// `Err(None)` when the bare library name is not found by the dynamic loader.
fn open(path: &std::ffi::OsStr) -> Result<Backend, Option<String>> {
    let shown = path.to_string_lossy().into_owned();
    // SAFETY: loading runs the library's initialisers; the backend is our own Rust cdylib,
    // whose only initialisers are those of Rust's runtime and of tpm2-tss.
    let library = match unsafe { Library::new(path) } {
        Ok(library) => library,
        Err(e) if shown == LIBRARY_NAME && e.to_string().contains("No such file") => return Err(None),
        Err(e) => return Err(Some(missing_dependency(&shown, &e.to_string()))),
    };
    // SAFETY: the symbols have the signatures keepassxc-tpm-abi declares; the version is read
    // through a function that takes nothing and returns a u32, which any version provides.
    let version = unsafe { library.get::<extern "C" fn() -> u32>(VERSION_SYMBOL) }
        .map(|f| f())
        .map_err(|_| Some(format!("{shown} is not a keepassxc-tpm backend")))?;
    if version != ABI_VERSION {
        return Err(Some(format!(
            "{shown} speaks interface version {version}, this KeePassXC needs version {ABI_VERSION}: install the \
             keepassxc-tpm backend built with this KeePassXC"
        )));
    }
    // SAFETY: checked above that the library serves ABI_VERSION, whose entry point returns a
    // pointer to a static table that lives as long as the library, which we never unload.
    let table = unsafe { library.get::<extern "C" fn() -> *const BackendV1>(ENTRY_SYMBOL) }
        .map(|f| f())
        .map_err(|_| Some(format!("{shown} lacks its entry point")))?;
    let table = unsafe { table.as_ref() }.ok_or_else(|| Some(format!("{shown} returned no function table")))?;
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
        pin: Option<&str>,
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
