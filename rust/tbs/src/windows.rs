//! The TBS calls (Windows only).

use windows_sys::Win32::System::TpmBaseServices::{
    Tbsi_Context_Create, Tbsi_GetDeviceInfo, Tbsip_Context_Close, Tbsip_Submit_Command, TBS_COMMAND_LOCALITY_ZERO,
    TBS_COMMAND_PRIORITY_NORMAL, TBS_CONTEXT_PARAMS, TBS_CONTEXT_PARAMS2, TBS_CONTEXT_VERSION_TWO, TBS_SUCCESS,
    TPM_DEVICE_INFO,
};

/// TBS_CONTEXT_PARAMS2's includeTpm20 bit.
const INCLUDE_TPM20: u32 = 1 << 2;

/// The largest response a TPM 2.0 sends through TBS.
const MAX_RESPONSE: usize = 4096;

/// One TBS context; closed (and its transient objects and sessions flushed by TBS) when dropped.
pub struct Context {
    handle: *mut core::ffi::c_void,
}

// SAFETY: a TBS context handle may be used from any thread, one call at a time; `submit` takes
// `&mut self`, so calls never overlap.
unsafe impl Send for Context {}

impl Context {
    /// Opens a context for a TPM 2.0; `Err` is TBS's code (e.g. [`crate::TPM_NOT_FOUND`]).
    pub fn open() -> Result<Context, u32> {
        let mut params = TBS_CONTEXT_PARAMS2 { version: TBS_CONTEXT_VERSION_TWO, ..Default::default() };
        params.Anonymous.asUINT32 = INCLUDE_TPM20;
        let mut handle: *mut core::ffi::c_void = std::ptr::null_mut();
        // SAFETY: `params` is a TBS_CONTEXT_PARAMS2 (version 2), which TBS reads through the version-1
        // header type; `handle` is a valid place for the new context.
        let created = unsafe { Tbsi_Context_Create((&raw const params).cast::<TBS_CONTEXT_PARAMS>(), &mut handle) };
        if created != TBS_SUCCESS {
            return Err(created);
        }
        Ok(Context { handle })
    }

    /// Sends one command and returns the TPM's (or TBS's) response; `Err` is TBS's code when it
    /// could not pass the command on at all.
    pub fn submit(&mut self, command: &[u8]) -> Result<Vec<u8>, u32> {
        let mut response = vec![0u8; MAX_RESPONSE];
        let mut length = response.len() as u32;
        let command_length = u32::try_from(command.len()).map_err(|_| crate::TPM_NOT_FOUND)?;
        // SAFETY: the context is open; the command and response buffers are valid for the lengths given.
        let submitted = unsafe {
            Tbsip_Submit_Command(
                self.handle,
                TBS_COMMAND_LOCALITY_ZERO,
                TBS_COMMAND_PRIORITY_NORMAL,
                command.as_ptr(),
                command_length,
                response.as_mut_ptr(),
                &mut length,
            )
        };
        if submitted != TBS_SUCCESS {
            return Err(submitted);
        }
        response.truncate((length as usize).min(MAX_RESPONSE));
        Ok(response)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context was created by `open` and is closed once, here.
        unsafe { Tbsip_Context_Close(self.handle) };
    }
}

/// What TBS says of the TPM: its version (2 for TPM 2.0), interface type and implementation revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// 1 for TPM 1.2, 2 for TPM 2.0.
    pub tpm_version: u32,
    /// TPM_IFTYPE_*: 1 TPM 1.2 style, 2 trust zone, 3 hardware (discrete), 4 emulator, 5 SPB.
    pub interface_type: u32,
    /// The implementation revision TBS reports.
    pub revision: u32,
}

/// TBS's device information; `Err` is TBS's code (no TPM: [`crate::TPM_NOT_FOUND`]).
pub fn device_info() -> Result<DeviceInfo, u32> {
    let mut info = TPM_DEVICE_INFO::default();
    // SAFETY: `info` is a TPM_DEVICE_INFO of the size passed.
    let rc = unsafe { Tbsi_GetDeviceInfo(size_of::<TPM_DEVICE_INFO>() as u32, (&raw mut info).cast()) };
    if rc != TBS_SUCCESS {
        return Err(rc);
    }
    Ok(DeviceInfo {
        tpm_version: info.tpmVersion,
        interface_type: info.tpmInterfaceType,
        revision: info.tpmImpRevision,
    })
}
