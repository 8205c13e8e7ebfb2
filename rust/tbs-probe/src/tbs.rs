//! The probe over TBS (Windows only): one TBS context, each command of the probe's list sent in it.

use std::process::ExitCode;

use keepassxc_tpm_tbs::{probe, Context};

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
    let (lines, blocked) = probe::run(&mut context);
    for line in &lines {
        println!("{line}");
    }
    println!("{blocked} of {} commands blocked for this user", probe::COMMANDS.len());
    ExitCode::SUCCESS
}
