//! `tpm-hmac pcsc enable|disable|status`: which keys the PC/SC reader driver presents to stock
//! KeePassXC as YubiKey-style cards (root's choice, kept in a root-owned file the driver reads),
//! and who may use them (a polkit rule, [`polkit`]).

pub(crate) mod polkit;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use keepassxc_tpm::cards::{self, slot_reader_name, Cards, DEFAULT_PATH};
use keepassxc_tpm::keyfile::KeyFile;
use keepassxc_tpm::metadata::{self, FileContent};
use keepassxc_tpm::{Algorithm, KeyRecord, Metadata, PersistentHandle, TpmOptions, TpmWorker};
use serde::Serialize;

use crate::error::CliError;
use crate::CliWorker;

/// Where the package registers the driver with pcscd.
pub(crate) const READER_CONF: &str = "/etc/reader.conf.d/keepassxc-tpm";

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    /// The driver's file of enabled keys (the DEVICENAME of its reader.conf.d entry)
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_PATH)]
    config: PathBuf,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Present a key (without a PIN) as a card to stock KeePassXC through pcscd; needs root
    Enable {
        #[command(flatten)]
        key: super::Target,
        /// The metadata file holding the key's record, when it is not yours (under sudo: the
        /// file of the user who made the key, e.g. /home/USER/.local/share/keepassxc-tpm/keys.json)
        #[arg(long, value_name = "PATH")]
        metadata: Option<PathBuf>,
        /// A user who may use the key besides root (repeatable; by default the user who ran sudo).
        /// Where pcscd asks polkit (Debian 13 and later), nobody else may use it
        #[arg(long = "user", value_name = "NAME")]
        users: Vec<String>,
    },
    /// Stop presenting a key through pcscd; needs root
    Disable {
        /// The key's persistent handle (or its KeePassXC serial)
        #[arg(long, value_parser = super::parse_handle)]
        handle: PersistentHandle,
    },
    /// Which keys the driver serves, and why others are not
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// How long `enable`'s trial challenge waits for the TPM (as the driver's own timeout does).
const DRY_RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// Where the driver's file may be when `tpm-hmac pcsc` runs under sudo.
const CONFIG_DIR: &str = "/etc/keepassxc-tpm";

pub fn run(tpm: &CliWorker, args: Args) -> Result<(), CliError> {
    if let Some(user) = sudo_user() {
        config_under_sudo(&args.config, &user.name)?;
    }
    match args.command {
        Command::Enable { key, metadata, users } => {
            // A key file's serial is its record's, in the record file its record is copied from.
            let handle = match key.key_file() {
                Some(path) => key_file_serial(path, metadata.as_deref())?,
                None => key.handle(tpm)?,
            };
            enable(tpm, &args.config, handle, metadata.as_deref(), users)
        }
        Command::Disable { handle } => disable(&args.config, handle),
        Command::Status { json } => status(&args.config, json),
    }
}

fn enable(
    tpm: &CliWorker,
    path: &Path,
    handle: PersistentHandle,
    metadata: Option<&Path>,
    mut users: Vec<String>,
) -> Result<(), CliError> {
    need_root(path, "enable")?;
    if users.is_empty() {
        users.extend(sudo_user().map(|u| u.name));
    }
    users.sort();
    users.dedup();
    for user in &users {
        polkit::check_user(user).map_err(|why| CliError::Input(format!("--user {user}: {why}")))?;
    }
    let mut content = current(path)?;
    let slot = cards::slot_for(&content, handle).ok_or_else(|| {
        CliError::Input(format!(
            "{} serves {} keys already, as many as the reader has slots: disable one first",
            path.display(),
            cards::MAX_SLOTS
        ))
    })?;
    // Everything from files is read here, before the TPM is asked.
    let record = record_to_copy(handle, metadata)?;
    let tcti = servable_key(tpm, handle, &record, metadata)?;
    match content.tcti.as_deref() {
        Some(other) if other != tcti && !content.keys.is_empty() => {
            return Err(CliError::Input(format!(
                "{} serves keys of the TPM at \"{other}\", not of \"{tcti}\": give --tcti \"{other}\", or disable those keys first",
                path.display()
            )))
        }
        _ => content.tcti = Some(tcti.clone()),
    }
    let value = serde_json::to_value(&record).map_err(|e| CliError::Input(e.to_string()))?;
    content.keys.insert(handle.to_string(), value);
    let mut settings = cards::settings(&content);
    settings.insert(handle.to_string(), cards::CardSettings { slot: Some(slot), users: users.clone() });
    cards::set_settings(&mut content, &settings);
    tried_and_installed(path, &content, &tcti, handle)?;
    say_enabled(handle, &tcti, slot);
    say_who(path, &users);
    install_rule(path)
}

/// Who may use the key now, as pcscd here decides it.
fn say_who(path: &Path, users: &[String]) {
    if path != Path::new(DEFAULT_PATH) {
        eprintln!("No polkit rule is written for {} (only for {DEFAULT_PATH}, the file pcscd reads).", path.display());
    } else if !polkit::pcscd_asks_polkit() {
        eprintln!(
            "tpm-hmac: warning: pcscd here does not ask polkit who may use a card (Debian 12's pcscd 1.9.9), so every \
             local user and process that can reach pcscd may use this key; --user has no effect. Debian 13 and later \
             let only the users named use it."
        );
    } else if users.is_empty() {
        eprintln!("Only root may use the key (polkit rule {}); name others with --user NAME.", polkit::RULE);
    } else {
        eprintln!("Only root and {} may use the key (polkit rule {}).", users.join(", "), polkit::RULE);
    }
}

/// The polkit rule for what `path` serves now, when `path` is the file the packaged reader entry
/// names (a file elsewhere, e.g. a test's, leaves the system's rule alone).
fn install_rule(path: &Path) -> Result<(), CliError> {
    if path != Path::new(DEFAULT_PATH) {
        return Ok(());
    }
    let cards = Cards::read(path).unwrap_or_default();
    polkit::install(&cards).map_err(|e| CliError::Input(format!("cannot write {}: {e}", polkit::RULE)))
}

/// The key's record as the driver's file will hold it: only a label a person can read is copied
/// (root's terminal and pcscd's log show it).
fn record_to_copy(handle: PersistentHandle, metadata: Option<&Path>) -> Result<KeyRecord, CliError> {
    let mut record = key_record(handle, metadata)?;
    if let Some(label) = record.label.take() {
        match keepassxc_tpm::check_label(&label) {
            Ok(checked) if checked == label => record.label = Some(label),
            _ => eprintln!("tpm-hmac: the key's label is not copied: it is not one `tpm-hmac label` would set"),
        }
    }
    Ok(record)
}

/// The TCTI of the TPM whose key at `handle` may be served as a card (no PIN, HMAC-SHA1, and
/// `record` a record the driver serves), or why it may not.
fn servable_key(
    tpm: &CliWorker,
    handle: PersistentHandle,
    record: &KeyRecord,
    metadata: Option<&Path>,
) -> Result<String, CliError> {
    let (key, tcti) = tpm.run(move |tpm| Ok((tpm.key_info(handle)?, tpm.tcti().to_string())))?;
    if key.needs_pin() {
        return Err(CliError::Input(format!(
            "the key at {handle} has a PIN, and a card served through pcscd cannot ask for one; use the key in the \
             KeePassXC fork this project builds, which asks for the PIN (see the README, \"KeePassXC\")"
        )));
    }
    if key.algorithm != Algorithm::Sha1 {
        return Err(CliError::Input(format!(
            "the key at {handle} is an {} key; KeePassXC's YubiKey protocol carries HMAC-SHA1 responses only: \
             create a key with --algorithm sha1",
            key.algorithm
        )));
    }
    cards::servable(handle, record).map_err(|why| {
        CliError::Input(format!(
            "the key at {handle} cannot be served: {why}; its record is in {}",
            record_place(metadata)
        ))
    })?;
    Ok(tcti)
}

/// Writes `content` beside `path`, tries it the way the driver will use it (a connection that
/// takes it as root's file of records, its pins against this TPM), and only then puts it in place.
fn tried_and_installed(
    path: &Path,
    content: &FileContent,
    tcti: &str,
    handle: PersistentHandle,
) -> Result<(), CliError> {
    let tmp = write_temporary(path, content)?;
    let options = TpmOptions::tcti(Some(tcti)).with_metadata(Metadata::service_file(&tmp));
    let tried =
        TpmWorker::start(options, DRY_RUN_TIMEOUT).run(move |tpm| tpm.challenge_block(handle, &[0u8; 64], None));
    if let Err(e) = tried {
        let _ = std::fs::remove_file(&tmp);
        return Err(CliError::Input(format!(
            "the key at {handle} did not answer as the driver would ask it: {}",
            e.explained()
        )));
    }
    install(&tmp, path)
}

fn say_enabled(handle: PersistentHandle, tcti: &str, slot: usize) {
    eprintln!(
        "The key at {handle} is served as a card (serial {}, YubiKey slot 1) in the reader \"{}\" through the TPM \
         at \"{tcti}\".",
        handle.serial(),
        slot_reader_name(slot)
    );
    eprintln!(
        "A running pcscd picks the change up within a second, without a restart; KeePassXC lists the key after Refresh \
         (keepassxc-cli: --yubikey 1:{}).",
        handle.serial()
    );
    if slot > 0 {
        eprintln!(
            "The reader gets its slots when pcscd loads it: if this key does not show up, restart pcscd (sudo \
             systemctl restart pcscd)."
        );
    }
    warn_unregistered();
}

fn disable(path: &Path, handle: PersistentHandle) -> Result<(), CliError> {
    need_root(path, "disable")?;
    let mut content = current(path)?;
    if content.keys.remove(&handle.to_string()).is_none() {
        eprintln!("The key at {handle} was not enabled in {}; nothing changed.", path.display());
        return Ok(());
    }
    let mut settings = cards::settings(&content);
    settings.remove(&handle.to_string());
    cards::set_settings(&mut content, &settings);
    let tmp = write_temporary(path, &content)?;
    install(&tmp, path)?;
    eprintln!("The key at {handle} is no longer served; a running pcscd takes its card out within a second.");
    install_rule(path)
}

#[derive(Serialize)]
struct Status {
    config: String,
    /// Why the driver serves nothing from the file, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    unusable: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcti: Option<String>,
    served: Vec<Served>,
    refused: Vec<Refused>,
    registered: bool,
    pcscd_running: bool,
    /// Whether pcscd asks polkit who may use a card; `false`: every local user may use them.
    polkit: bool,
    /// The polkit rule, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
}

#[derive(Serialize)]
struct Served {
    handle: String,
    serial: u32,
    keepassxc: String,
    reader: String,
    users: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

#[derive(Serialize)]
struct Refused {
    handle: String,
    reason: String,
}

fn status(path: &Path, json: bool) -> Result<(), CliError> {
    if std::fs::File::open(path).is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied) {
        return Err(CliError::Input(format!(
            "only root may read {} (pcscd reads it as root): run `sudo tpm-hmac pcsc status`",
            path.display()
        )));
    }
    let loaded = Cards::read(path);
    let missing = !path.exists() && std::fs::symlink_metadata(path).is_err();
    let (config, unusable) = match loaded {
        Ok(config) => (config, None),
        Err(_) if missing => (Default::default(), None),
        Err(why) => (Default::default(), Some(why)),
    };
    let status = Status {
        config: path.display().to_string(),
        unusable,
        tcti: config.tcti.clone(),
        served: config
            .served
            .iter()
            .map(|k| Served {
                handle: k.handle.to_string(),
                serial: k.handle.serial(),
                keepassxc: format!("1:{}", k.handle.serial()),
                reader: slot_reader_name(k.slot),
                users: k.users.clone(),
                // The file may have been edited: a label is shown only as `tpm-hmac label` would set it.
                label: k.record.shown_label(),
            })
            .collect(),
        refused: config.refused.iter().map(|(h, why)| Refused { handle: h.clone(), reason: why.to_string() }).collect(),
        registered: Path::new(READER_CONF).exists(),
        pcscd_running: Path::new("/run/pcscd/pcscd.comm").exists(),
        polkit: polkit::pcscd_asks_polkit(),
        rule: Path::new(polkit::RULE).exists().then(|| polkit::RULE.to_owned()),
    };
    if json {
        out!("{}", crate::output::json(&status));
        return Ok(());
    }
    match (&status.unusable, missing) {
        (Some(why), _) => out!("{}: serves no key: {why}", status.config),
        (None, true) => out!("{}: no key enabled (tpm-hmac pcsc enable --handle HANDLE)", status.config),
        (None, false) => out!("{}: TPM {}", status.config, status.tcti.as_deref().unwrap_or("(default search)")),
    }
    for key in &status.served {
        let label = key.label.as_deref().map(|l| format!("  {l}")).unwrap_or_default();
        let who = match (status.polkit, key.users.is_empty()) {
            (false, _) => "every local user".to_owned(),
            (true, true) => "root only".to_owned(),
            (true, false) => format!("root, {}", key.users.join(", ")),
        };
        out!("  served   {}  --yubikey {}  \"{}\"  used by: {who}{label}", key.handle, key.keepassxc, key.reader);
    }
    for key in &status.refused {
        out!("  refused  {}  {}", key.handle, key.reason);
    }
    if !status.served.is_empty() {
        match (&status.rule, status.polkit) {
            (Some(rule), true) => out!("Who may use each key: polkit rule {rule}."),
            (None, true) => out!("No polkit rule ({}): run tpm-hmac pcsc enable again to write it.", polkit::RULE),
            (_, false) => out!(
                "pcscd here does not ask polkit (Debian 12): every local user and process that can reach pcscd may use \
                 these keys."
            ),
        }
    }
    if !status.registered {
        out!("The driver is not registered with pcscd: {READER_CONF} is missing (install the package).");
    }
    if !status.pcscd_running {
        out!("pcscd is not running (it starts when a program such as KeePassXC asks for a card reader).");
    }
    Ok(())
}

fn need_root(path: &Path, what: &str) -> Result<(), CliError> {
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    if me == 0 {
        return Ok(());
    }
    Err(CliError::Input(format!(
        "`tpm-hmac pcsc {what}` changes {}, which only root may write (pcscd trusts nothing else): run it with sudo",
        path.display()
    )))
}

/// The driver's file as it is now (empty when missing), refusing one the driver would refuse.
fn current(path: &Path) -> Result<FileContent, CliError> {
    Metadata::service_file(path).content().map_err(|e| {
        let why = e.file_reason();
        CliError::Input(format!(
            "{}: {why}; the driver refuses it too: make it a regular file owned by root with mode 644, or move it away",
            path.display()
        ))
    })
}

/// `content` in a new file beside `path`, for [`install`]: mode 0644 (root writes it; pcscd's user,
/// root or `pcscd` where its unit says `User=`, must read it; it holds public areas and names, no
/// secret), in a directory made 0755 when missing, so that pcscd's user can enter it.
fn write_temporary(path: &Path, content: &FileContent) -> Result<PathBuf, CliError> {
    content.write_temporary(path, 0o755, 0o644).map_err(|e| cannot_write(path, e))
}

/// Puts the file [`write_temporary`] made in place of `path` (a regular file or nothing).
fn install(tmp: &Path, path: &Path) -> Result<(), CliError> {
    metadata::install(tmp, path).map_err(|e| cannot_write(path, std::io::Error::other(format!("{e}; move it away"))))
}

fn cannot_write(path: &Path, e: std::io::Error) -> CliError {
    CliError::Input(format!("cannot write {}: {e}", path.display()))
}

fn record_place(metadata: Option<&Path>) -> String {
    match metadata {
        Some(path) => path.display().to_string(),
        None => Metadata::default_location()
            .path()
            .map_or_else(|| "your metadata file".to_owned(), |p| p.display().to_string()),
    }
}

/// The record file a key's record is copied from, and where it is (for messages): `metadata` when
/// given, else this user's; under sudo the file of the user who ran sudo (by default their own
/// record file), read with that user's rights (a file they could not read themselves stays closed
/// to them), and never written. The record is checked against the TPM before it is used.
fn record_source(metadata: Option<&Path>) -> Result<(FileContent, String), CliError> {
    let unreadable = |path: &Path, why: String| CliError::Input(format!("{}: {why}", path.display()));
    let place = |path: &Path| path.display().to_string();
    match (metadata, sudo_user()) {
        (Some(path), Some(user)) => Ok((content_as(&user, path)?, place(path))),
        (Some(path), None) => Ok((metadata::read_input(path).map_err(|why| unreadable(path, why))?, place(path))),
        (None, Some(user)) => {
            let path = keepassxc_tpm::os::default_record_file(&user.home);
            Ok((content_as(&user, &path)?, place(&path)))
        }
        (None, None) => Ok((Metadata::default_location().content()?, record_place(None))),
    }
}

/// The key's record (see [`record_source`]).
fn key_record(handle: PersistentHandle, metadata: Option<&Path>) -> Result<KeyRecord, CliError> {
    let (content, place) = record_source(metadata)?;
    content.record(handle).map_err(|why| CliError::Input(format!("{place}: {why}")))?.ok_or_else(|| {
        CliError::Input(format!(
            "no record of the key at {handle} in {place}; run `tpm-hmac info --handle {handle}` as the user who made \
             the key (using it records it), or give the file that holds its record with --metadata"
        ))
    })
}

/// The serial of the key kept in the key file at `path` (read with the rights of the user who ran
/// sudo, under sudo): its record's in the record file [`record_source`] reads.
fn key_file_serial(path: &Path, metadata: Option<&Path>) -> Result<PersistentHandle, CliError> {
    let unusable = |why: String| CliError::Input(format!("the key file {} cannot be used: {why}", path.display()));
    let file = match sudo_user() {
        Some(user) => KeyFile::from_pem(&text_as(&user, path)?).map_err(|e| unusable(e.to_string()))?,
        None => KeyFile::read(path).map_err(|e| unusable(e.to_string()))?,
    };
    let (content, place) = record_source(metadata)?;
    content.key_file_serial(&file).ok_or_else(|| unusable(format!("no record of this key in {place}")))
}

/// The user who ran sudo, when this runs under sudo for someone other than root.
struct SudoUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

fn sudo_user() -> Option<SudoUser> {
    let name = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty() && u != "root")?;
    let uid = std::env::var("SUDO_UID").ok()?.parse().ok().filter(|&uid| uid != 0)?;
    let gid = std::env::var("SUDO_GID").ok()?.parse().ok()?;
    let home = keepassxc_tpm::os::home_of(&name)?;
    Some(SudoUser { name, uid, gid, home })
}

/// Under sudo the driver's file is root's, in /etc/keepassxc-tpm/: root's rights are not lent to
/// write (or read) a file elsewhere.
fn config_under_sudo(path: &Path, user: &str) -> Result<(), CliError> {
    use std::path::Component;
    let plain = path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if plain && path.parent() == Some(Path::new(CONFIG_DIR)) {
        return Ok(());
    }
    Err(CliError::Input(format!(
        "under sudo (for {user}) --config must name a file in {CONFIG_DIR}/, not {}; run it as root itself to \
         use another file",
        path.display()
    )))
}

/// The record file at `path`, read with `user`'s rights ([`text_as`]) and then checked as the
/// driver checks its own file's content.
fn content_as(user: &SudoUser, path: &Path) -> Result<FileContent, CliError> {
    FileContent::from_text(&text_as(user, path)?).map_err(|why| CliError::Input(format!("{}: {why}", path.display())))
}

/// The text of the file at `path`, read with `user`'s rights: setpriv, a bounded read with a time
/// limit (a FIFO or a device cannot hold it up).
fn text_as(user: &SudoUser, path: &Path) -> Result<String, CliError> {
    let limit = (metadata::MAX_FILE_SIZE + 1).to_string();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", &user.uid.to_string(), "--regid", &user.gid.to_string(), "--init-groups", "--"])
        .args(["timeout", "5", "head", "-c", &limit, "--"])
        .arg(path)
        .env_clear()
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| CliError::Input(format!("cannot read {} as {}: setpriv: {e}", path.display(), user.name)))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().next().unwrap_or("it could not be read").trim_start_matches("head: ");
        return Err(CliError::Input(format!("{} cannot read it: {why}", user.name)));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| CliError::Input(format!("{}: it is not a text file (not UTF-8)", path.display())))
}

fn warn_unregistered() {
    if !Path::new(READER_CONF).exists() {
        eprintln!(
            "tpm-hmac: warning: the driver is not registered with pcscd ({READER_CONF} is missing): install the \
             package, or copy packaging/pcsc/keepassxc-tpm there and restart pcscd"
        );
    }
}
