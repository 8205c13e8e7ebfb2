//! Who may use the keys the driver serves, where pcscd asks polkit (pcsc-lite 2.x: Debian 13 and
//! later): a rule that gives each slot of the driver's reader to root and the users named for its
//! key, refuses it to everyone else (whatever an active session or a later rule would allow), and
//! leaves every other reader to the system's policy. pcscd asks `org.debian.pcsc-lite.access_pcsc`
//! when a client connects and `org.debian.pcsc-lite.access_card` with the reader's name as the
//! detail `reader` when it connects to a card (pcsc-lite's README.polkit).

use std::path::Path;

use std::os::unix::fs::PermissionsExt;

use keepassxc_tpm::cards::{slot_reader_name, Cards, READER_NAME};
use keepassxc_tpm::metadata;

/// The rule `tpm-hmac pcsc enable` writes.
pub(crate) const RULE: &str = "/etc/polkit-1/rules.d/60-keepassxc-tpm.rules";

/// pcsc-lite's polkit actions: installed where pcscd asks polkit (not by Debian 12's pcscd 1.9.9).
const ACTIONS: &str = "/usr/share/polkit-1/actions/org.debian.pcsc-lite.policy";

/// Whether pcscd here asks polkit who may use a card.
pub(crate) fn pcscd_asks_polkit() -> bool {
    Path::new(ACTIONS).exists()
}

/// A user name `tpm-hmac pcsc enable --user` accepts: an account of this system, with a name of
/// the characters Debian allows (so it can go into the rule's text as it is).
pub(crate) fn check_user(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with(['-', '.']);
    if !plain {
        return Err(format!("\"{}\" is not a user name", name.escape_debug()));
    }
    if name == "root" {
        return Err("root may always use the key: name the users besides root".to_owned());
    }
    keepassxc_tpm::os::home_of(name).map(drop).ok_or_else(|| format!("there is no user \"{name}\" on this system"))
}

/// The rule for `cards`, or `None` when no key is served.
pub(crate) fn rule(cards: &Cards) -> Option<String> {
    if cards.served.is_empty() {
        return None;
    }
    let slots = cards
        .served
        .iter()
        .map(|card| {
            let users = card.users.iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ");
            format!("        \"{}\": [{users}]", slot_reader_name(card.slot))
        })
        .collect::<Vec<_>>()
        .join(",\n");
    Some(format!(
        r#"// keepassxc-tpm: who may use the TPM keys pcscd serves through the tpm-hmac driver's reader.
// Written by `tpm-hmac pcsc enable` and `disable` from /etc/keepassxc-tpm/pcsc.json: do not edit.
// Each slot of the reader holds one key: root and the users named for it may use it, nobody else
// may (whatever an active session or another rule would allow); other readers are left alone.
polkit.addRule(function(action, subject) {{
    var slots = {{
{slots}
    }};
    if (action.id == "org.debian.pcsc-lite.access_card") {{
        var reader = action.lookup("reader");
        if (typeof reader == "string" && reader.indexOf("{READER_NAME} ") == 0) {{
            var users = slots.hasOwnProperty(reader) ? slots[reader] : [];
            if (subject.user == "root" || users.indexOf(subject.user) >= 0) {{
                return polkit.Result.YES;
            }}
            return polkit.Result.NO;
        }}
    }}
    if (action.id == "org.debian.pcsc-lite.access_pcsc") {{
        for (var slot in slots) {{
            if (slots.hasOwnProperty(slot) && slots[slot].indexOf(subject.user) >= 0) {{
                return polkit.Result.YES;
            }}
        }}
    }}
}});
"#
    ))
}

/// Writes the rule for `cards` (or removes it when no key is served), where pcscd asks polkit.
pub(crate) fn install(cards: &Cards) -> std::io::Result<()> {
    match rule(cards) {
        Some(text) if pcscd_asks_polkit() => {
            let path = Path::new(RULE);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // Written as every record file is (a new file, never through a symlink, renamed in
            // place); polkitd reads it as its own user: 0644.
            let tmp = metadata::write_temporary(path, text.as_bytes())?;
            if let Err(e) = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            metadata::install(&tmp, path)
        }
        _ => match std::fs::remove_file(RULE) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_go_into_the_rule_only_when_plain() {
        for bad in ["", "a\"b", "a b", "-x", ".x", "ä", "a\\b", "x);", &"a".repeat(33)] {
            assert!(check_user(bad).unwrap_err().contains("not a user name"), "{bad}");
        }
        assert!(check_user("root").unwrap_err().contains("root may always"));
        assert!(check_user("no-such-user-here").unwrap_err().contains("no user"));
    }
}
