//! The PC/SC reader driver, through which stock KeePassXC uses TPM keys: whether pcscd knows it,
//! runs and has loaded it, which keys it serves, and for each HMAC key it does not serve, why.

use std::path::{Path, PathBuf};

use keepassxc_tpm::cards::Cards;
use keepassxc_tpm::{Error, Metadata, PersistentHandle, TpmOptions, TpmWorker, DEFAULT_TIMEOUT};

use super::tpm::Facts;
use super::Finding;
use crate::cmd::pcsc::{polkit, READER_CONF};

/// The file name of the driver, as pcscd's memory map shows it once loaded.
const DRIVER_FILE: &str = "libkeepassxc_tpm_pcsc.so";

/// The driver's findings. `tpm`: what the TPM said (`None` when it did not answer).
pub fn check(config_path: &Path, tpm: Option<&Facts>) -> Vec<Finding> {
    let mut findings = match registered_library() {
        Some(library) => vec![driver(&library), pcscd()],
        None => vec![Finding::note(
            "pcsc-driver",
            format!(
                "the PC/SC driver is not registered with pcscd ({READER_CONF} is missing): stock KeePassXC lists no \
                 TPM key; install the tpm-hmac package to use TPM keys there"
            ),
        )],
    };
    findings.extend(keys(config_path, tpm));
    findings
}

/// The LIBPATH of the driver's reader.conf.d entry, when the entry is there.
fn registered_library() -> Option<PathBuf> {
    let entry = std::fs::read_to_string(READER_CONF).ok()?;
    let path = entry.lines().find_map(|l| l.trim().strip_prefix("LIBPATH")).map(str::trim).unwrap_or_default();
    Some(PathBuf::from(path))
}

fn driver(library: &Path) -> Finding {
    if library.is_file() {
        Finding::ok("pcsc-driver", format!("registered with pcscd ({READER_CONF}: {})", library.display()))
    } else {
        Finding::problem(
            "pcsc-driver",
            format!("{READER_CONF} names {}, which is not there", library.display()),
            "reinstall the tpm-hmac package (sudo apt install --reinstall tpm-hmac)",
        )
    }
}

/// Whether pcscd runs, and whether it has loaded the driver (its memory map says so; only root and
/// pcscd's own user may read it).
fn pcscd() -> Finding {
    let Some(pid) = process_named("pcscd") else {
        return match Path::new("/usr/sbin/pcscd").exists() {
            true => Finding::note(
                "pcscd",
                "pcscd is not running now; it starts when a program such as KeePassXC looks for a card reader",
            ),
            false => Finding::problem(
                "pcscd",
                "pcscd is not installed: stock KeePassXC cannot reach the driver",
                "sudo apt install pcscd",
            ),
        };
    };
    match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        Ok(maps) if maps.contains(DRIVER_FILE) => {
            Finding::ok("pcscd", format!("pcscd (pid {pid}) has loaded the driver"))
        }
        Ok(_) => Finding::problem(
            "pcscd",
            format!("pcscd (pid {pid}) runs without the driver: it started before the driver was installed"),
            "sudo systemctl restart pcscd",
        ),
        Err(_) => Finding::note(
            "pcscd",
            format!("pcscd runs (pid {pid}); whether it loaded the driver only root can see: sudo tpm-hmac doctor"),
        ),
    }
}

/// The first process whose command name is `name`.
fn process_named(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        (comm.trim() == name).then_some(pid)
    })
}

/// Which keys the driver serves; each enabled key checked against the TPM as the driver will (its
/// name against the pinned one, no authorisation sent); each HMAC key not served, and why.
fn keys(path: &Path, tpm: Option<&Facts>) -> Vec<Finding> {
    let shown = path.display();
    if std::fs::File::open(path).is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied) {
        return vec![Finding::note("pcsc-keys", format!("only root may read {shown}: sudo tpm-hmac doctor"))];
    }
    if std::fs::symlink_metadata(path).is_err() {
        return vec![Finding::note(
            "pcsc-keys",
            format!(
                "no key is enabled for stock KeePassXC ({shown} is missing): sudo tpm-hmac pcsc enable --handle HANDLE"
            ),
        )];
    }
    let config = match Cards::read(path) {
        Ok(config) => config,
        Err(why) => {
            return vec![Finding::problem(
                "pcsc-keys",
                format!("the driver refuses {shown}: {why}"),
                format!(
                    "sudo chown root:root {shown} && sudo chmod 644 {shown}, or move it away and enable the keys again"
                ),
            )]
        }
    };
    let mut findings = Vec::new();
    let (served, broken) = match checked_cards(path, &config) {
        Ok(sorted) => sorted,
        Err(e) => {
            findings.push(Finding::problem(
                "pcsc-keys",
                format!(
                    "the TPM the driver uses ({}) does not answer: {}",
                    config.tcti.as_deref().unwrap_or("default"),
                    e.explained()
                ),
                "see the connection lines above",
            ));
            Default::default()
        }
    };
    if !served.is_empty() {
        findings.push(Finding::ok(
            "pcsc-keys",
            format!("the PC/SC driver serves {} to stock KeePassXC", served.join(", ")),
        ));
    }
    findings.extend(who_may_use(&config));
    if !broken.is_empty() {
        findings.push(Finding::problem(
            "pcsc-keys",
            format!("enabled but not served: {}", broken.join("; ")),
            "sudo tpm-hmac pcsc disable --handle HANDLE, then enable the key that is there now",
        ));
    }
    let hidden = not_served(&config, tpm);
    if !hidden.is_empty() {
        findings.push(Finding::note("pcsc-keys", format!("the PC/SC driver does not serve {}", hidden.join("; "))));
    }
    findings
}

/// Who may use the served keys: the polkit rule where pcscd asks polkit, else everyone.
fn who_may_use(config: &Cards) -> Option<Finding> {
    if config.served.is_empty() {
        return None;
    }
    if !polkit::pcscd_asks_polkit() {
        return Some(Finding::note(
            "pcsc-users",
            "pcscd here does not ask polkit (Debian 12's pcscd 1.9.9): every local user and process that can reach \
             pcscd may use the served keys",
        ));
    }
    let who = |card: &keepassxc_tpm::cards::Card| match card.users.is_empty() {
        true => format!("{}: root", card.handle),
        false => format!("{}: root, {}", card.handle, card.users.join(", ")),
    };
    let users = config.served.iter().map(who).collect::<Vec<_>>().join("; ");
    Some(match std::fs::read_to_string(polkit::RULE) {
        Ok(text) if polkit::rule(config).is_some_and(|r| r == text) => {
            Finding::ok("pcsc-users", format!("who may use each key (polkit rule {}): {users}", polkit::RULE))
        }
        Ok(_) => Finding::problem(
            "pcsc-users",
            format!(
                "the polkit rule {} does not match the enabled keys (edited, or left by another version)",
                polkit::RULE
            ),
            "sudo tpm-hmac pcsc enable --handle HANDLE [--user NAME] for one of the keys writes it again",
        ),
        Err(_) => Finding::problem(
            "pcsc-users",
            format!(
                "no polkit rule {}: polkit's default lets every user with an active local session use the served keys",
                polkit::RULE
            ),
            "sudo tpm-hmac pcsc enable --handle HANDLE [--user NAME] for one of the keys writes it",
        ),
    })
}

/// The driver's cards checked against the TPM as the driver checks them (its file as the records):
/// those it serves, and those it would refuse now, each with why.
fn checked_cards(path: &Path, config: &Cards) -> Result<(Vec<String>, Vec<String>), Error> {
    let (mut served, mut broken) = (Vec::new(), Vec::new());
    if config.served.is_empty() {
        return Ok((served, broken));
    }
    let handles: Vec<PersistentHandle> = config.served.iter().map(|k| k.handle).collect();
    let options = TpmOptions::tcti(config.tcti.clone()).with_metadata(Metadata::service_file(path));
    let results = TpmWorker::start(options, DEFAULT_TIMEOUT)
        .run(move |tpm| Ok(handles.into_iter().map(|h| (h, tpm.checked_key(h))).collect::<Vec<_>>()))?;
    for (handle, result) in results {
        match result {
            Ok(key) if key.needs_pin() => broken.push(format!("{handle}: it has a PIN now")),
            Ok(_) => served.push(format!("{handle} (--yubikey 1:{})", handle.serial())),
            Err(e @ (Error::RecordMismatch { .. } | Error::EmptyHandle { .. })) => {
                broken.push(format!("{handle}: {}", not_the_enabled_key(&e)))
            }
            Err(e) => broken.push(format!("{handle}: {}", e.explained())),
        }
    }
    Ok((served, broken))
}

/// The keys the driver does not serve, each with why: refused from its file, or on the TPM and
/// not enabled (or with a PIN).
fn not_served(config: &Cards, tpm: Option<&Facts>) -> Vec<String> {
    let mut hidden: Vec<String> = config.refused.iter().map(|(h, why)| format!("{h}: {why}")).collect();
    let enabled = |h: &String| {
        config.served.iter().any(|k| k.handle.to_string() == *h) || config.refused.iter().any(|(r, _)| r == h)
    };
    for handle in tpm.map(|t| t.hmac_keys.as_slice()).unwrap_or_default().iter().filter(|h| !enabled(h)) {
        if tpm.is_some_and(|t| t.pin_keys.contains(handle)) {
            hidden.push(format!("{handle}: it has a PIN, which a card cannot ask for (use it in the KeePassXC fork)"));
        } else {
            hidden.push(format!("{handle}: not enabled (sudo tpm-hmac pcsc enable --handle {handle})"));
        }
    }
    hidden
}

fn not_the_enabled_key(e: &Error) -> &'static str {
    match e {
        Error::EmptyHandle { .. } => "the key was deleted",
        _ => "another key is there now than the one enabled (re-created, or the TPM cleared)",
    }
}
