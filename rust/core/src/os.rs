//! What the system's account files say about users and groups (for messages about who owns a TPM
//! device, and for `tpm-hmac pcsc` under sudo), and where a user's record file is by default.

use std::path::{Path, PathBuf};

/// A user's record file, relative to their home directory (unless `$XDG_DATA_HOME` or
/// `$KEEPASSXC_TPM_METADATA` say otherwise: [`crate::Metadata::default_location`]).
pub const RECORD_FILE_IN_HOME: &str = ".local/share/keepassxc-tpm/keys.json";

/// The name of user `uid` (/etc/passwd).
pub fn user_name(uid: u32) -> Option<String> {
    field_of("/etc/passwd", |fields| (fields.get(2)?.parse::<u32>().ok()? == uid).then(|| fields[0].to_owned()))
}

/// The name of group `gid` (/etc/group; the TPM device is usually group "tss").
pub fn group_name(gid: u32) -> Option<String> {
    field_of("/etc/group", |fields| (fields.get(2)?.parse::<u32>().ok()? == gid).then(|| fields[0].to_owned()))
}

/// The home directory of the user named `name` (/etc/passwd): sudo keeps neither the user's HOME
/// nor their XDG_DATA_HOME.
pub fn home_of(name: &str) -> Option<PathBuf> {
    field_of("/etc/passwd", |fields| (fields.len() >= 6 && fields[0] == name).then(|| PathBuf::from(fields[5])))
}

/// The uid of the user named `name` (/etc/passwd).
pub fn uid_of(name: &str) -> Option<u32> {
    field_of("/etc/passwd", |fields| (fields.len() >= 4 && fields[0] == name).then(|| fields[2].parse().ok())?)
}

/// The groups a process started for the user named `name` is in (systemd and login call
/// initgroups): the user's primary group and every group of /etc/group that lists them.
pub fn groups_of(name: &str) -> Vec<u32> {
    let primary =
        field_of("/etc/passwd", |fields| (fields.len() >= 4 && fields[0] == name).then(|| fields[3].parse().ok())?);
    let mut gids: Vec<u32> = primary.into_iter().collect();
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    for fields in groups.lines().map(|line| line.split(':').collect::<Vec<_>>()) {
        if fields.len() >= 4 && fields[3].split(',').any(|member| member == name) {
            gids.extend(fields[2].parse::<u32>().ok());
        }
    }
    gids
}

/// The gid of the group named `name` (/etc/group).
pub fn gid_of(name: &str) -> Option<u32> {
    field_of("/etc/group", |fields| (fields.len() >= 3 && fields[0] == name).then(|| fields[2].parse().ok())?)
}

/// A user's default record file, in their home directory `home`.
pub fn default_record_file(home: &Path) -> PathBuf {
    home.join(RECORD_FILE_IN_HOME)
}

/// The first entry of the colon-separated `database` for which `pick` gives something.
fn field_of<T>(database: &str, pick: impl Fn(&[&str]) -> Option<T>) -> Option<T> {
    let entries = std::fs::read_to_string(database).ok()?;
    entries.lines().find_map(|line| pick(&line.split(':').collect::<Vec<_>>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_root() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert_eq!(home_of("root"), Some(PathBuf::from("/root")));
        assert_eq!(home_of("no such user, surely"), None);
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(gid_of("root"), Some(0));
        assert!(groups_of("root").contains(&0));
        assert_eq!(uid_of("no such user, surely"), None);
        assert_eq!(
            default_record_file(Path::new("/home/a")),
            PathBuf::from("/home/a/.local/share/keepassxc-tpm/keys.json")
        );
    }
}
