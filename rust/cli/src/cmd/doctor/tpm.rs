//! The checks that ask the TPM: which TPM answers through which resource manager, its maker and
//! firmware, the storage key, room for keys, the dictionary-attack state and the PCR banks.

use keepassxc_tpm::{DaStatus, PersistentHandle, SrkState, Tcti, TpmFacts, PROJECT_RANGE};
use serde::Serialize;

use super::Finding;
use crate::error::remedy;
use crate::CliWorker;

/// What the TPM said, for `--json`.
#[derive(Serialize)]
pub struct Facts {
    tcti: String,
    manufacturer: String,
    vendor: String,
    firmware: String,
    persistent_used: u32,
    persistent_free: u32,
    /// Persistent handles in use, `0x81000100` style.
    pub handles: Vec<String>,
    /// The HMAC keys among them.
    pub hmac_keys: Vec<String>,
    /// Those of them that need a PIN.
    pub pin_keys: Vec<String>,
    srk: String,
    lockout_failures: u32,
    lockout_max_failures: u32,
    lockout_interval_seconds: u32,
    lockout_recovery_seconds: u32,
    locked_out: bool,
    pcr_banks: Vec<String>,
}

struct Answers {
    tcti: Tcti,
    facts: TpmFacts,
    srk: SrkState,
    da: DaStatus,
    handles: Vec<u32>,
    hmac_keys: Vec<PersistentHandle>,
    pin_keys: Vec<PersistentHandle>,
}

/// Asks the TPM (one connection, a few read-only commands) and adds what it found to `findings`.
pub fn check(worker: &CliWorker, findings: &mut Vec<Finding>) -> Option<Facts> {
    let answers = worker.run(|tpm| {
        let handles = tpm.persistent_handles()?;
        let keys = tpm.keys_among(&handles)?;
        Ok(Answers {
            tcti: tpm.tcti().clone(),
            facts: tpm.facts()?,
            srk: tpm.srk_state()?,
            da: tpm.da_status()?,
            pin_keys: keys.iter().filter(|k| k.needs_pin()).map(|k| k.handle).collect(),
            hmac_keys: keys.into_iter().map(|k| k.handle).collect(),
            handles,
        })
    });
    let answers = match answers {
        Ok(answers) => answers,
        Err(crate::error::CliError::Tpm(e)) => {
            let fix = remedy(&e).unwrap_or("see the lines above").to_owned();
            findings.push(Finding::problem("connection", e.explained(), fix));
            return None;
        }
        Err(e) => {
            findings.push(Finding::problem("connection", e.to_string(), "see the lines above"));
            return None;
        }
    };
    findings.push(connection(&answers.tcti));
    findings.push(identity(&answers.facts));
    findings.push(storage_key(&answers.srk, !answers.hmac_keys.is_empty()));
    findings.push(room(&answers));
    findings.push(lockout(&answers.da));
    findings.push(pcr_banks(&answers.facts.pcr_banks));
    let Answers { tcti, facts, srk, da, handles, hmac_keys, pin_keys } = answers;
    Some(Facts {
        tcti: tcti.to_string(),
        firmware: facts.firmware_version(),
        manufacturer: facts.manufacturer,
        vendor: facts.vendor,
        persistent_used: facts.persistent_used,
        persistent_free: facts.persistent_free,
        handles: handles.iter().map(|h| format!("0x{h:08x}")).collect(),
        hmac_keys: hmac_keys.iter().map(ToString::to_string).collect(),
        pin_keys: pin_keys.iter().map(ToString::to_string).collect(),
        srk: format!("{srk:?}"),
        lockout_failures: da.failures,
        lockout_max_failures: da.max_failures,
        lockout_interval_seconds: da.interval_seconds,
        lockout_recovery_seconds: da.lockout_recovery_seconds,
        locked_out: da.locked_out,
        pcr_banks: facts.pcr_banks,
    })
}

fn connection(tcti: &Tcti) -> Finding {
    let manager = match tcti.module() {
        "tabrmd" => "the tpm2-abrmd resource manager",
        _ if tcti.flushes_on_close() => "the kernel's resource manager",
        "swtpm" | "mssim" => "a TPM simulator, no resource manager",
        _ => "no resource manager: KeePassXC and tpm-hmac must not use it at the same time",
    };
    Finding::ok("connection", format!("{tcti} answers ({manager})"))
}

fn identity(facts: &TpmFacts) -> Finding {
    let maker = match facts.vendor.as_str() {
        "" => facts.manufacturer.clone(),
        vendor => format!("{} {vendor}", facts.manufacturer),
    };
    let detail = format!("{maker}, firmware {}", facts.firmware_version());
    if facts.manufacturer == "IBM" && facts.vendor.contains("SW") {
        Finding::note("tpm", format!("{detail}: a software TPM, which protects no key from this machine's root"))
    } else {
        Finding::ok("tpm", detail)
    }
}

fn storage_key(srk: &SrkState, has_keys: bool) -> Finding {
    // The TCG template: tpm2-tools' default lacks noDA
    const PERSIST: &str =
        "tpm2_createprimary -C o -G ecc -a \"fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|\
                           restricted|decrypt\" -c srk.ctx && tpm2_evictcontrol -C o -c srk.ctx 0x81000001 (or run \
                           tpm-hmac create once: it persists the standard one)";
    match srk {
        SrkState::Standard => Finding::ok("storage-key", "0x81000001 is the standard ECC P-256 SRK"),
        SrkState::OtherStorageKey(what) => Finding::note(
            "storage-key",
            format!(
                "0x81000001 holds a storage key of another template than the TCG's ECC P-256 SRK ({what}): it works"
            ),
        ),
        SrkState::NotStorageKey(what) => Finding::note(
            "storage-key",
            format!(
                "0x81000001 holds {what}, not a storage key: every challenge first creates one (slower); leave \
                 that object alone if another program needs it"
            ),
        ),
        // A fresh TPM: the first `create` persists it
        SrkState::Missing if !has_keys => Finding::note(
            "storage-key",
            "nothing at 0x81000001 yet: the first tpm-hmac create persists the standard ECC P-256 SRK there",
        ),
        SrkState::Missing => Finding::problem(
            "storage-key",
            "nothing at 0x81000001: every challenge first creates a storage key (slower unlocks)",
            PERSIST,
        ),
    }
}

fn room(answers: &Answers) -> Finding {
    let ours = answers.handles.iter().filter(|h| PROJECT_RANGE.contains(h)).count();
    let detail = format!(
        "{} persistent objects, room for {} more; {ours} in keepassxc-tpm's range 0x{:08x}-0x{:08x}, {} HMAC keys",
        answers.facts.persistent_used,
        answers.facts.persistent_free,
        PROJECT_RANGE.start(),
        PROJECT_RANGE.end(),
        answers.hmac_keys.len(),
    );
    if answers.facts.persistent_free == 0 {
        Finding::problem(
            "persistent-slots",
            format!("the TPM's persistent memory is full ({detail}): tpm-hmac create will fail"),
            "delete keys you no longer use: tpm-hmac delete --handle HANDLE (tpm2_evictcontrol -C o -c HANDLE for \
             other objects)",
        )
    } else {
        Finding::ok("persistent-slots", detail)
    }
}

fn lockout(da: &DaStatus) -> Finding {
    let detail = format!(
        "{} of {} failed PIN tries counted, one forgotten every {} s",
        da.failures, da.max_failures, da.interval_seconds
    );
    if da.locked_out {
        Finding::problem(
            "lockout",
            format!(
                "the TPM is locked out by its dictionary-attack protection ({detail}): keys with a PIN are refused"
            ),
            format!(
                "wait {} s for one try to come back, or reset the counter: tpm2_dictionarylockout --clear-lockout \
                 (needs the lockout authorisation; a wrong one locks that out for {} s; keys without a PIN keep \
                 working)",
                da.interval_seconds, da.lockout_recovery_seconds
            ),
        )
    } else if da.failures > 0 {
        Finding::note("lockout", format!("{detail}; {} tries left before lockout", da.tries_left()))
    } else {
        Finding::ok("lockout", detail)
    }
}

fn pcr_banks(banks: &[String]) -> Finding {
    if banks.iter().any(|b| b == "sha256") {
        Finding::ok("pcr-banks", banks.join(", "))
    } else {
        Finding::note(
            "pcr-banks",
            format!("no sha256 bank ({}): keys bound to PCRs (--pcrs) cannot be made", banks.join(", ")),
        )
    }
}
