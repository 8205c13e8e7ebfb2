//! `tpm-hmac doctor`: why KeePassXC lists no TPM key, or why a key fails. Checks this machine
//! (device, access, TCTI modules, the metadata file, KeePassXC's backend, the PC/SC driver for
//! stock KeePassXC) and then asks the TPM (maker and firmware, storage key, free slots, lockout,
//! PCR banks). Every problem is one line
//! with its fix; the exit status is 0 only when there is none.

mod host;
mod key_files;
mod pcsc;
mod tpm;
mod unit;

use std::path::PathBuf;

use serde::Serialize;

use keepassxc_tpm::Tcti;

use crate::error::CliError;
use crate::CliWorker;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON
    #[arg(long)]
    json: bool,
    /// KeePassXC's TPM backend to check, instead of looking in the places packages install it
    #[arg(long, value_name = "FILE")]
    backend: Option<PathBuf>,
    /// The PC/SC driver's file of enabled keys to check
    #[arg(long, value_name = "FILE", default_value = keepassxc_tpm::cards::DEFAULT_PATH)]
    pcsc_config: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// Worth knowing, nothing to fix.
    Note,
    /// Something that stops a key from working (or will), with its fix.
    Problem,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    check: &'static str,
    verdict: Verdict,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
        Finding { check, verdict: Verdict::Ok, detail: detail.into(), fix: None }
    }

    pub fn note(check: &'static str, detail: impl Into<String>) -> Finding {
        Finding { check, verdict: Verdict::Note, detail: detail.into(), fix: None }
    }

    pub fn problem(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { check, verdict: Verdict::Problem, detail: detail.into(), fix: Some(fix.into()) }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    healthy: bool,
    findings: &'a [Finding],
    #[serde(skip_serializing_if = "Option::is_none")]
    tpm: Option<tpm::Facts>,
}

pub fn run(worker: &CliWorker, args: Args) -> Result<(), CliError> {
    let tcti = match worker.tcti() {
        Some(conf) => Some(Tcti::parse(conf)),
        None => Tcti::from_environment(),
    };
    let mut findings = host::check(tcti.as_ref());
    let facts = tpm::check(worker, &mut findings);
    findings.push(host::metadata(facts.as_ref().map(|f| f.handles.as_slice())));
    if facts.is_some() {
        findings.extend(key_files::check(worker));
    }
    findings.push(host::backend(args.backend.as_deref()));
    findings.extend(pcsc::check(&args.pcsc_config, facts.as_ref()));
    findings.extend(unit::check(&args.pcsc_config));

    let problems = findings.iter().filter(|f| f.verdict == Verdict::Problem).count();
    if args.json {
        let report = Report { healthy: problems == 0, findings: &findings, tpm: facts };
        out!("{}", crate::output::json(&report));
    } else {
        for finding in &findings {
            let verdict = match finding.verdict {
                Verdict::Ok => "ok",
                Verdict::Note => "note",
                Verdict::Problem => "PROBLEM",
            };
            match &finding.fix {
                Some(fix) => out!("{verdict:<8}{}: {}; fix: {fix}", finding.check, finding.detail),
                None => out!("{verdict:<8}{}: {}", finding.check, finding.detail),
            }
        }
    }
    match problems {
        0 => Ok(()),
        1 => Err(CliError::Input("doctor found a problem (its fix is on its line above)".to_owned())),
        n => Err(CliError::Input(format!("doctor found {n} problems (each line says its fix)"))),
    }
}
