//! The probe over TBS (Windows only): one TBS context, each command of [`crate::COMMANDS`] sent in it.

use std::process::ExitCode;

use keepassxc_tpm_tbs::Context;

pub fn probe() -> ExitCode {
    let mut context = match Context::open() {
        Ok(context) => context,
        Err(created) => {
            eprintln!(
                "tpm-hmac-tbs-probe: no TPM 2.0 reachable through TBS (0x{created:08X}); check that the TPM is \
                 enabled in the firmware (tpm.msc shows it)"
            );
            return ExitCode::from(1);
        }
    };
    let mut blocked = 0;
    for (code, name, why) in crate::COMMANDS {
        let response = match context.submit(&crate::empty_command(code)) {
            Ok(response) if response.len() >= 10 => response,
            Ok(_) => {
                println!("error    0x{code:08X} {name}: TBS gave back a short answer");
                continue;
            }
            Err(submitted) => {
                println!("error    0x{code:08X} {name}: TBS failed to pass it on (0x{submitted:08X})");
                continue;
            }
        };
        let rc = u32::from_be_bytes([response[6], response[7], response[8], response[9]]);
        blocked += usize::from(rc == crate::COMMAND_BLOCKED);
        println!("{}", crate::verdict(code, name, why, rc));
    }
    println!("{blocked} of {} commands blocked for this user", crate::COMMANDS.len());
    ExitCode::SUCCESS
}
