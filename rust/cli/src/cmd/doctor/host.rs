//! The checks that need no TPM answer: the device and this user's access to it, the TCTI modules,
//! the metadata file, and whether KeePassXC's backend library loads.

use std::fs::OpenOptions;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use keepassxc_tpm::{Metadata, Tcti};
use keepassxc_tpm_abi::LIBRARY_NAME;

use super::Finding;

/// The devices the default search opens, the kernel's resource manager first.
const DEVICES: [&str; 2] = ["/dev/tpmrm0", "/dev/tpm0"];

/// tpm2-tss's TCTI modules that Debian packages as libtss2-tcti-<name>0.
const KNOWN_MODULES: [&str; 6] = ["device", "tabrmd", "swtpm", "mssim", "cmd", "pcap"];

const GROUP_FIX: &str = "sudo usermod -aG tss \"$USER\", then log out and in again";
const UDEV_FIX: &str = "sudo apt install tpm-udev (its udev rule gives the tss group /dev/tpmrm0), then sudo \
                        usermod -aG tss \"$USER\" and log out and in again";

/// Device, access and TCTI modules, for the TCTI that will be used (`None`: the default search;
/// an error: a TCTI string that cannot be used, named as given).
pub fn check(tcti: Option<&Result<Tcti, keepassxc_tpm::Error>>) -> Vec<Finding> {
    let mut findings = Vec::new();
    match tcti {
        Some(Ok(tcti)) => match tcti.device() {
            Some(device) => findings.push(device_access(device)),
            None => findings.push(Finding::note("device", format!("not used: the TCTI is {tcti}"))),
        },
        Some(Err(e)) => findings.push(Finding::note("device", format!("not used: {}", e.explained()))),
        None => match DEVICES.iter().map(Path::new).find(|d| d.exists()) {
            Some(device) => findings.push(device_access(device)),
            None => findings.push(Finding::problem(
                "device",
                "this machine has no TPM device (no /dev/tpmrm0 or /dev/tpm0)",
                "enable the TPM in the firmware setup (Intel PTT, AMD fTPM or \"Security Chip\"); a virtual machine \
                 needs a virtual TPM",
            )),
        },
    }
    findings.push(modules(tcti));
    findings
}

fn device_access(device: &Path) -> Finding {
    let shown = device.display();
    let info = match std::fs::metadata(device) {
        Ok(info) => info,
        Err(e) => return Finding::problem("device", format!("{shown}: {e}"), "check the TCTI (--tcti device:PATH)"),
    };
    let owner = format!("owner {}:{}, mode {:o}", user_name(info.uid()), group_name(info.gid()), info.mode() & 0o777);
    let kind = if shown.to_string().contains("tpmrm") {
        "the kernel's resource manager"
    } else {
        "the raw TPM: one program at a time"
    };
    match OpenOptions::new().read(true).write(true).open(device) {
        Ok(_) => Finding::ok("device", format!("{shown} ({kind}; {owner}) opens for you")),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let group = group_name(info.gid());
            let fix = if group != "tss" {
                UDEV_FIX.to_owned()
            } else if in_group_now(info.gid()) {
                format!(
                    "you are in the tss group, but its mode ({:o}) does not let the group open it: reinstall \
                         tpm-udev, or look for another udev rule that changes it",
                    info.mode() & 0o777
                )
            } else if listed_in_group("tss") {
                "you are in the tss group, but this login session is not yet: log out and in again".to_owned()
            } else {
                GROUP_FIX.to_owned()
            };
            Finding::problem("device", format!("you may not open {shown} ({owner})"), fix)
        }
        Err(e) => Finding::problem(
            "device",
            format!("{shown} ({owner}) does not open: {e}"),
            "the raw device serves one program at a time: if tpm2-abrmd holds it, use it through tpm2-abrmd (see the \
             connection line); else close the program that holds it, or use /dev/tpmrm0",
        ),
    }
}

/// Which TCTI modules tpm2-tss can load, and whether the one needed is among them.
fn modules(tcti: Option<&Result<Tcti, keepassxc_tpm::Error>>) -> Finding {
    let dirs = library_dirs();
    let installed: Vec<&str> = KNOWN_MODULES
        .iter()
        .copied()
        .filter(|m| dirs.iter().any(|d| d.join(format!("libtss2-tcti-{m}.so.0")).exists()))
        .collect();
    let needed = match tcti {
        Some(Ok(tcti)) => tcti.module().to_owned(),
        // A string that does not parse: its module is what comes before the colon.
        Some(Err(keepassxc_tpm::Error::UnknownTcti { tcti } | keepassxc_tpm::Error::TctiOption { tcti, .. })) => {
            tcti.split(':').next().unwrap_or_default().to_owned()
        }
        Some(Err(_)) | None => "device".to_owned(),
    };
    // A file name or path is loaded as it is: nothing to look for.
    if needed.contains('/') || needed.contains(".so") || installed.iter().any(|m| *m == needed) {
        return Finding::ok("tcti-modules", format!("installed: {}", installed.join(", ")));
    }
    if KNOWN_MODULES.contains(&needed.as_str()) {
        Finding::problem(
            "tcti-modules",
            format!(
                "the TCTI module for \"{needed}:\" (libtss2-tcti-{needed}.so.0) is not installed; installed: {}",
                if installed.is_empty() { "none".to_owned() } else { installed.join(", ") }
            ),
            format!("sudo apt install libtss2-tcti-{needed}0"),
        )
    } else {
        Finding::problem(
            "tcti-modules",
            format!("there is no TCTI module called \"{needed}\" (libtss2-tcti-{needed}.so.0)"),
            format!("use one of {} in --tcti or TPM2TOOLS_TCTI, e.g. device:/dev/tpmrm0", KNOWN_MODULES.join(", ")),
        )
    }
}

/// Where the dynamic loader finds libraries: LD_LIBRARY_PATH, ld.so.conf.d and the usual places.
fn library_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var("LD_LIBRARY_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    if let Ok(entries) = std::fs::read_dir("/etc/ld.so.conf.d") {
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            dirs.extend(text.lines().map(str::trim).filter(|l| l.starts_with('/')).map(PathBuf::from));
        }
    }
    dirs.extend(["/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib"].map(PathBuf::from));
    dirs
}

/// The name of user `uid`, else the number.
fn user_name(uid: u32) -> String {
    keepassxc_tpm::os::user_name(uid).unwrap_or_else(|| uid.to_string())
}

/// The name of group `gid`, else the number.
fn group_name(gid: u32) -> String {
    keepassxc_tpm::os::group_name(gid).unwrap_or_else(|| gid.to_string())
}

/// Whether /etc/group lists this user in `group` (a login session may not have it yet).
fn listed_in_group(group: &str) -> bool {
    let Ok(user) = std::env::var("USER") else { return false };
    let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    text.lines().any(|l| {
        let f: Vec<&str> = l.split(':').collect();
        f.len() == 4 && f[0] == group && f[3].split(',').any(|m| m == user)
    })
}

/// Whether this process has `gid` among its groups.
fn in_group_now(gid: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter_map(|l| l.strip_prefix("Groups:").or_else(|| l.strip_prefix("Gid:")))
        .flat_map(str::split_whitespace)
        .any(|g| g == gid.to_string())
}

/// The metadata file: readable, private, every record parses, and (when the TPM answered) every
/// record names a key that is there.
pub fn metadata(handles_in_tpm: Option<&[String]>) -> Finding {
    let metadata = Metadata::default_location();
    let Some(path) = metadata.path() else {
        return Finding::problem(
            "metadata",
            "no place for the key records (neither HOME nor XDG_DATA_HOME nor KEEPASSXC_TPM_METADATA is set)",
            "set HOME, or KEEPASSXC_TPM_METADATA to a file",
        );
    };
    let shown = path.display();
    if !path.exists() && path.symlink_metadata().is_err() {
        return Finding::note("metadata", format!("{shown} does not exist yet (create and import make it)"));
    }
    let records = match metadata.records() {
        Ok(records) => records,
        Err(e) => {
            return Finding::problem(
                "metadata",
                e.to_string(),
                format!(
                    "make it a regular file of yours with mode 0600 (chmod 600 {shown}), or move it aside and \
                         let keys pin their storage key again on first use"
                ),
            )
        }
    };
    let broken: Vec<&str> = records.iter().filter(|(_, r)| r.is_err()).map(|(h, _)| h.as_str()).collect();
    if !broken.is_empty() {
        return Finding::problem(
            "metadata",
            format!("{shown}: the records of {} are malformed", broken.join(", ")),
            "restore the file from a backup, or delete those records (their keys then pin their storage key again)",
        );
    }
    let stale: Vec<&str> = match handles_in_tpm {
        Some(present) => records.iter().map(|(h, _)| h.as_str()).filter(|h| !present.iter().any(|p| p == h)).collect(),
        None => Vec::new(),
    };
    if !stale.is_empty() {
        return Finding::note(
            "metadata",
            format!(
                "{shown}: {} record(s); no key in this TPM at {} (deleted elsewhere, or another TPM's)",
                records.len(),
                stale.join(", ")
            ),
        );
    }
    Finding::ok("metadata", format!("{shown}: {} record(s), all readable", records.len()))
}

/// The places KeePassXC's packages and `cmake --install` put the backend.
fn backend_locations() -> Vec<PathBuf> {
    let multiarch = match std::env::consts::ARCH {
        "x86_64" => Some("x86_64-linux-gnu"),
        "aarch64" => Some("aarch64-linux-gnu"),
        "arm" => Some("arm-linux-gnueabihf"),
        "riscv64" => Some("riscv64-linux-gnu"),
        _ => None,
    };
    let mut dirs = Vec::new();
    if let Some(triple) = multiarch {
        dirs.push(PathBuf::from(format!("/usr/lib/{triple}/keepassxc")));
    }
    dirs.extend(["/usr/lib/keepassxc", "/usr/local/lib/keepassxc", "/usr/local/lib64/keepassxc"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(LIBRARY_NAME)).collect()
}

/// Whether KeePassXC's backend loads here, with KeePassXC's own loader and its checks.
pub fn backend(explicit: Option<&Path>) -> Finding {
    let from_env =
        std::env::var_os(keepassxc_tpm_bridge::testing::BACKEND_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
    let path = match explicit.map(Path::to_path_buf).or(from_env) {
        Some(path) if !path.exists() => {
            return Finding::problem(
                "keepassxc-backend",
                format!("{} does not exist", path.display()),
                "give the path of libkeepassxc_tpm_backend.so",
            )
        }
        Some(path) => path,
        None => match backend_locations().into_iter().find(|p| p.exists()) {
            Some(path) => path,
            None => {
                return Finding::note(
                    "keepassxc-backend",
                    format!("KeePassXC's TPM backend is not installed ({LIBRARY_NAME} is in none of {}): KeePassXC \
                             lists TPM keys only when it is (install the KeePassXC package with TPM support, see the README)",
                            backend_locations().iter().map(|p| p.parent().unwrap_or(p).display().to_string()).collect::<Vec<_>>().join(", ")),
                )
            }
        },
    };
    match keepassxc_tpm_bridge::check_backend(&path) {
        Ok(()) => Finding::ok("keepassxc-backend", format!("{} loads", path.display())),
        Err(reason) => Finding::problem(
            "keepassxc-backend",
            reason,
            "reinstall the KeePassXC package with TPM support (or install the libraries it names)",
        ),
    }
}
