//! The probe over TBS (Windows only): one TBS context, each command of [`crate::COMMANDS`] sent in it.

use std::process::ExitCode;

use windows_sys::Win32::System::TpmBaseServices::{
    Tbsi_Context_Create, Tbsip_Context_Close, Tbsip_Submit_Command, TBS_COMMAND_LOCALITY_ZERO,
    TBS_COMMAND_PRIORITY_NORMAL, TBS_CONTEXT_PARAMS, TBS_CONTEXT_PARAMS2, TBS_CONTEXT_VERSION_TWO, TBS_SUCCESS,
};

/// TBS_CONTEXT_PARAMS2's includeTpm20 bit.
const INCLUDE_TPM20: u32 = 1 << 2;

pub fn probe() -> ExitCode {
    let mut params = TBS_CONTEXT_PARAMS2 { version: TBS_CONTEXT_VERSION_TWO, ..Default::default() };
    params.Anonymous.asUINT32 = INCLUDE_TPM20;
    let mut context: *mut core::ffi::c_void = std::ptr::null_mut();
    // SAFETY: `params` is a TBS_CONTEXT_PARAMS2 (version 2), which TBS reads through the version-1
    // header type; `context` is a valid place for the handle.
    let created = unsafe { Tbsi_Context_Create((&raw const params).cast::<TBS_CONTEXT_PARAMS>(), &mut context) };
    if created != TBS_SUCCESS {
        eprintln!(
            "tpm-hmac-tbs-probe: no TPM 2.0 reachable through TBS (0x{created:08X}); check that the TPM is \
             enabled in the firmware (tpm.msc shows it)"
        );
        return ExitCode::from(1);
    }
    let mut blocked = 0;
    for (code, name, why) in crate::COMMANDS {
        let command = crate::empty_command(code);
        let mut response = [0u8; 4096];
        let mut length = response.len() as u32;
        // SAFETY: the context is open; the command and response buffers are valid for the lengths given.
        let submitted = unsafe {
            Tbsip_Submit_Command(
                context,
                TBS_COMMAND_LOCALITY_ZERO,
                TBS_COMMAND_PRIORITY_NORMAL,
                command.as_ptr(),
                command.len() as u32,
                response.as_mut_ptr(),
                &mut length,
            )
        };
        if submitted != TBS_SUCCESS || length < 10 {
            println!("error    0x{code:08X} {name}: TBS failed to pass it on (0x{submitted:08X})");
            continue;
        }
        let rc = u32::from_be_bytes([response[6], response[7], response[8], response[9]]);
        blocked += usize::from(rc == crate::COMMAND_BLOCKED);
        println!("{}", crate::verdict(code, name, why, rc));
    }
    // SAFETY: the context was created above and is closed once.
    unsafe { Tbsip_Context_Close(context) };
    println!("{blocked} of {} commands blocked for this user", crate::COMMANDS.len());
    ExitCode::SUCCESS
}
