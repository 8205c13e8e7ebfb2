//! pcscd as systemd runs it: whether its unit's user, groups and capabilities let the driver open the
//! TPM device and read its file, and whether its sandbox hides either. Read from the unit's effective
//! settings (`systemctl show pcscd.service`), so a drop-in, a release's own hardening (Debian 13:
//! no capabilities; sid: `User=pcscd`) and a local override all count.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use keepassxc_tpm::cards::{Cards, PCSCD_DROP_IN as DROP_IN};
use keepassxc_tpm::os;

use super::Finding;

/// What `systemctl show` says of pcscd's unit.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unit {
    /// `User=` (empty: root).
    user: String,
    /// `SupplementaryGroups=`, by name.
    groups: Vec<String>,
    /// Whether the capability bounding set keeps CAP_DAC_OVERRIDE (root reads and opens anything).
    dac_override: bool,
    /// `ProtectHome=` is not "no": /home, /root and /run/user are hidden or read-only.
    protect_home: bool,
    /// `PrivateTmp=`: /tmp is the service's own.
    private_tmp: bool,
}

impl Unit {
    /// The unit's settings from `systemctl show`'s KEY=VALUE lines.
    fn parse(text: &str) -> Unit {
        let mut unit = Unit { dac_override: true, ..Unit::default() };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else { continue };
            match key {
                "User" => unit.user = value.trim().to_owned(),
                "SupplementaryGroups" => unit.groups = value.split_whitespace().map(str::to_owned).collect(),
                "CapabilityBoundingSet" => {
                    unit.dac_override = value.split_whitespace().any(|c| c == "cap_dac_override")
                }
                "ProtectHome" => unit.protect_home = !matches!(value.trim(), "no" | ""),
                "PrivateTmp" => unit.private_tmp = value.trim() == "yes",
                _ => {}
            }
        }
        unit
    }

    fn user_name(&self) -> &str {
        if self.user.is_empty() {
            "root"
        } else {
            &self.user
        }
    }

    /// Who the service is, as the kernel checks a file's permissions: "user root without
    /// capabilities", "user pcscd".
    fn who(&self) -> String {
        match (self.user_name(), self.dac_override) {
            ("root", false) => "root without capabilities".to_owned(),
            (user, _) => format!("user {user}"),
        }
    }

    /// Whether the service may open `path` for `want` (4: read, 6: read and write).
    fn may_open(&self, path: &Path, want: u32) -> Result<bool, std::io::Error> {
        let meta = std::fs::metadata(path)?;
        let user = self.user_name();
        if user == "root" && self.dac_override {
            return Ok(true);
        }
        let uid = os::uid_of(user);
        let mode = meta.mode();
        if uid == Some(meta.uid()) {
            return Ok((mode >> 6) & want == want);
        }
        let in_group = gids_of(user, &self.groups).contains(&meta.gid());
        if in_group {
            return Ok((mode >> 3) & want == want);
        }
        Ok(mode & want == want)
    }

    /// Why `path` is not visible to the service at all, if it is not.
    fn hides(&self, path: &Path) -> Option<&'static str> {
        let under = |dir: &str| path.starts_with(dir);
        if self.protect_home && (under("/home") || under("/root") || under("/run/user")) {
            return Some("ProtectHome= hides /home, /root and /run/user from it");
        }
        if self.private_tmp && (under("/tmp") || under("/var/tmp")) {
            return Some("PrivateTmp= gives it a /tmp of its own");
        }
        None
    }
}

/// pcscd's unit, when systemd runs this system and knows the unit.
fn pcscd_unit() -> Option<Unit> {
    if !Path::new("/run/systemd/system").is_dir() {
        return None;
    }
    let out = Command::new("systemctl")
        .args(["show", "pcscd.service", "-p", "LoadState,User,SupplementaryGroups,CapabilityBoundingSet"])
        .args(["-p", "ProtectHome,PrivateTmp"])
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().any(|l| l == "LoadState=loaded").then(|| Unit::parse(&text))
}

/// The device the driver opens: its file's TCTI when that is a device, else the default search's
/// first choice. `None` for other TCTIs (tpm2-abrmd is reached over D-Bus, swtpm over TCP).
fn device(cards: &Cards) -> Option<PathBuf> {
    match cards.tcti.as_deref() {
        None => Some(PathBuf::from("/dev/tpmrm0")),
        Some(tcti) => {
            let conf = tcti.strip_prefix("device")?;
            let path = conf.strip_prefix(':').unwrap_or(conf).trim();
            Some(PathBuf::from(if path.is_empty() { "/dev/tpm0" } else { path }))
        }
    }
}

/// The findings on pcscd's unit: none where systemd does not run pcscd.
pub fn check(config: &Path) -> Vec<Finding> {
    let Some(unit) = pcscd_unit() else { return Vec::new() };
    check_unit(&unit, config)
}

fn check_unit(unit: &Unit, config: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    let who = unit.who();
    let groups = if unit.groups.is_empty() { "none".to_owned() } else { unit.groups.join(" ") };
    let reload = "sudo systemctl daemon-reload && sudo systemctl restart pcscd";
    if let Some(why) = unit.hides(config) {
        findings.push(Finding::problem(
            "pcscd-unit",
            format!("pcscd cannot see the driver's file {}: {why}", config.display()),
            format!("use {} (the packaged reader entry's DEVICENAME)", keepassxc_tpm::cards::DEFAULT_PATH),
        ));
    }
    if let Ok(false) = unit.may_open(config, 4) {
        findings.push(Finding::problem(
            "pcscd-unit",
            format!(
                "pcscd cannot read {}: its unit runs it as {who}, and the file is {}",
                config.display(),
                owner_and_mode(config)
            ),
            format!("sudo chown root:root {0} && sudo chmod 644 {0} (it holds no secret)", config.display()),
        ));
    }
    let cards = Cards::read(config).unwrap_or_default();
    let Some(device) = device(&cards) else {
        findings.push(Finding::ok(
            "pcscd-unit",
            format!("pcscd runs as {who}; the driver reaches the TPM through \"{}\"", cards.tcti.unwrap_or_default()),
        ));
        return findings;
    };
    if let Some(why) = unit.hides(&device) {
        findings.push(Finding::problem(
            "pcscd-unit",
            format!("pcscd cannot see the TPM device {}: {why}", device.display()),
            "enable the key with --tcti device:/dev/tpmrm0",
        ));
    }
    match unit.may_open(&device, 6) {
        Ok(true) => findings.push(Finding::ok(
            "pcscd-unit",
            format!("pcscd runs as {who} (supplementary groups: {groups}) and may open {}", device.display()),
        )),
        Ok(false) => {
            let group = std::fs::metadata(&device)
                .ok()
                .and_then(|m| os::group_name(m.gid()))
                .unwrap_or_else(|| "its group".to_owned());
            let fix = if Path::new(DROP_IN).exists() {
                format!("{DROP_IN} is there but not in effect, or another drop-in overrides it: {reload}")
            } else {
                format!("reinstall tpm-hmac (its drop-in {DROP_IN} adds SupplementaryGroups={group}), then {reload}")
            };
            findings.push(Finding::problem(
                "pcscd-unit",
                format!(
                    "pcscd cannot open {} ({}): its unit runs it as {who} with supplementary groups {groups}, no \
                     access to group {group}",
                    device.display(),
                    owner_and_mode(&device)
                ),
                fix,
            ))
        }
        Err(e) => findings.push(Finding::problem(
            "pcscd-unit",
            format!("pcscd cannot open {}: {e}", device.display()),
            "check that the TPM is enabled in the firmware and that tpm-udev is installed (sudo apt install tpm-udev)",
        )),
    }
    findings
}

fn owner_and_mode(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "{}:{} {:o}",
            os::user_name(m.uid()).unwrap_or_else(|| m.uid().to_string()),
            os::group_name(m.gid()).unwrap_or_else(|| m.gid().to_string()),
            m.mode() & 0o7777
        ),
        Err(e) => e.to_string(),
    }
}

/// The groups a service running as `user` with the unit's `extra` supplementary groups is in.
fn gids_of(user: &str, extra: &[String]) -> Vec<u32> {
    let mut gids = os::groups_of(user);
    gids.extend(extra.iter().filter_map(|group| os::gid_of(group)));
    gids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_of_each_release() {
        let bookworm = Unit::parse("LoadState=loaded\nUser=\nSupplementaryGroups=\nCapabilityBoundingSet=cap_chown cap_dac_override cap_fowner\nProtectHome=no\nPrivateTmp=no\n");
        assert_eq!(bookworm.who(), "user root");
        assert!(bookworm.dac_override && !bookworm.protect_home);
        let trixie =
            Unit::parse("User=\nSupplementaryGroups=tss\nCapabilityBoundingSet=\nProtectHome=yes\nPrivateTmp=yes\n");
        assert_eq!(trixie.who(), "root without capabilities");
        assert_eq!(trixie.groups, ["tss"]);
        assert_eq!(
            trixie.hides(Path::new("/home/a/pcsc.json")),
            Some("ProtectHome= hides /home, /root and /run/user from it")
        );
        assert!(trixie.hides(Path::new("/tmp/x")).is_some());
        assert_eq!(trixie.hides(Path::new("/etc/keepassxc-tpm/pcsc.json")), None);
        let sid = Unit::parse("User=pcscd\nSupplementaryGroups=\nCapabilityBoundingSet=\n");
        assert_eq!(sid.who(), "user pcscd");
    }

    #[test]
    fn a_file_others_may_not_read_is_closed_to_a_unit_without_capabilities() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pcsc.json");
        std::fs::write(&file, "{}").unwrap();
        let me = os::user_name(std::fs::metadata(&file).unwrap().uid()).unwrap();
        let nobody = Unit { user: "nobody".into(), ..Unit::default() };
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!nobody.may_open(&file, 4).unwrap());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(nobody.may_open(&file, 4).unwrap());
        assert!(!nobody.may_open(&file, 6).unwrap());
        let owner = Unit { user: me, ..Unit::default() };
        assert!(owner.may_open(&file, 6).unwrap());
        assert!(nobody.may_open(&dir.path().join("missing"), 4).is_err());
    }

    #[test]
    fn the_device_from_the_files_tcti() {
        let with = |tcti: Option<&str>| device(&Cards { tcti: tcti.map(str::to_owned), ..Cards::default() });
        assert_eq!(with(None), Some(PathBuf::from("/dev/tpmrm0")));
        assert_eq!(with(Some("device:/dev/tpm0")), Some(PathBuf::from("/dev/tpm0")));
        assert_eq!(with(Some("tabrmd:bus_type=system")), None);
        assert_eq!(with(Some("swtpm:port=2321")), None);
    }
}
