//! `tpm-hmac doctor`: whether Windows sees a TPM 2.0 (TBS's device information), whether a TBS
//! context opens, whether the record file and the key files it names are usable; with
//! `--probe-commands`, which TPM commands Windows lets this user send (what the project asks the
//! first people with Windows machines to report). Every problem is one line with its fix; the exit
//! status is 0 only when there is none.

use keepassxc_tpm_tbs::{device_info, probe, Context};

use crate::error::CliError;

#[derive(clap::Args)]
pub struct Args {
    /// Also send each TPM command the project needs (with empty parameters: nothing is made or
    /// changed) and report which ones Windows blocks for you
    #[arg(long)]
    probe_commands: bool,
}

/// TPM_IFTYPE_* of TPM_DEVICE_INFO.
fn interface(kind: u32) -> &'static str {
    match kind {
        1 => "TPM 1.2 style",
        2 => "firmware (trust zone)",
        3 => "discrete (hardware)",
        4 => "emulator",
        5 => "SPB",
        _ => "unknown interface",
    }
}

pub fn run(args: Args) -> Result<(), CliError> {
    let mut problems = 0;
    let mut problem = |text: String| {
        problems += 1;
        out!("problem  {text}");
    };
    match device_info() {
        Ok(info) if info.tpm_version == 2 => {
            out!("ok       TBS sees a TPM 2.0 ({}, revision {})", interface(info.interface_type), info.revision)
        }
        Ok(info) => problem(format!(
            "TBS sees a TPM {}, not 2.0; fix: a TPM 2.0 is needed (a firmware update may switch a TPM 1.2 to 2.0)",
            info.tpm_version
        )),
        Err(rc) => problem(format!(
            "no TPM found by TBS (0x{rc:08X}); fix: enable the TPM (PTT, fTPM) in the firmware; tpm.msc shows it"
        )),
    }
    let context = match Context::open() {
        Ok(context) => {
            out!("ok       a TBS context opens for this user");
            Some(context)
        }
        Err(rc) => {
            problem(format!(
                "TBS refuses a context (0x{rc:08X}); fix: check that tpm.msc says the TPM is ready for use"
            ));
            None
        }
    };
    let records = super::records();
    let shown = records.path().map(|p| p.display().to_string()).unwrap_or_else(|| "(no %LOCALAPPDATA%)".into());
    match keepassxc_tpm::KeyFileTpm::list_in(&records) {
        Ok(keys) => {
            out!("ok       the record file {shown} holds {} key file(s)", keys.len());
            for (key, path) in keys {
                match path {
                    Some(path) if !path.is_file() => problem(format!(
                        "the key file of {} is not at {}; fix: put it back, or delete its record with `tpm-hmac delete`",
                        key.handle,
                        path.display()
                    )),
                    _ => {}
                }
            }
        }
        Err(e) => problem(format!("the record file cannot be used: {e}; fix: repair or move it away")),
    }
    if let (true, Some(mut context)) = (args.probe_commands, context) {
        let (lines, blocked) = probe::run(&mut context);
        for line in &lines {
            out!("{line}");
        }
        out!("{blocked} of {} commands blocked for this user; please send this report to the project", lines.len());
    }
    if problems == 0 {
        Ok(())
    } else {
        Err(CliError::Input(format!("{problems} problem(s) found")))
    }
}
