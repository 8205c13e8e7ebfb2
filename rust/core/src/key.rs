//! HMAC keys: their templates and types, their KeePassXC names, label checks, and telling what sits
//! at a persistent handle. Creating, importing, persisting and deleting keys are `impl Tpm` in
//! `tpm/keys.rs`.

use serde::{Deserialize, Serialize};

use crate::address::{PersistentHandle, SLOT};
pub use crate::algorithm::Algorithm;
use crate::error::{Error, Result};
use crate::secret::Pin;

#[cfg(unix)]
mod esys;
pub(crate) mod public;
#[cfg(unix)]
pub(crate) use esys::{describe, hmac_template, key_policy, persistent_handle, Object};

/// The empty policy's digest (SHA-256): what a policy session holds before any policy command.
pub(crate) const EMPTY_POLICY: [u8; 32] = [0; 32];

/// Where the key's secret came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Generated inside the TPM: no copy exists anywhere else.
    Generated,
    /// Imported from a secret the user holds (a YubiKey twin, or a recovery secret).
    Imported,
}

/// An HMAC key in the TPM's persistent storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The persistent handle the key is stored at.
    pub handle: PersistentHandle,
    /// The key's hash.
    pub algorithm: Algorithm,
    /// Whether the key was generated in the TPM or imported.
    pub origin: Origin,
    /// Exempt from dictionary-attack lockout (keys without a PIN).
    pub no_da: bool,
    /// Bound to a policy (PCRs): usable only while the boot state matches.
    pub policy_bound: bool,
    /// Usable only through a policy session with the empty policy (keys without PIN or PCRs made
    /// since this form was introduced): a failed authorisation in such a session never counts
    /// toward the dictionary-attack lockout, whatever object sits at the handle. Keys made
    /// before use their (empty) authValue instead.
    pub empty_policy: bool,
    /// The key cannot be duplicated to another TPM (fixedTPM).
    pub fixed_tpm: bool,
    /// The key cannot be duplicated to another parent (fixedParent).
    pub fixed_parent: bool,
    /// The user's name for the key, from its metadata record (which may be lost: then none).
    pub label: Option<String>,
}

impl KeyInfo {
    /// Needs a PIN: keys without one are noDA (exempt from the lockout), keys with one are not.
    pub fn needs_pin(&self) -> bool {
        !self.no_da
    }

    /// Whether an authorisation for this key is one the TPM could count as a dictionary-attack
    /// failure if another object sat at the handle: its authValue goes into the session (a PIN,
    /// or the empty authValue of a key made before the empty-policy form). Such keys have the
    /// name at their handle read and checked before every authorisation; a policy session
    /// without PolicyAuthValue is never counted (TPM 2.0 Part 4, SessionProcess.c
    /// `IncrementLockout`), so the others need no such check.
    pub fn authorisation_may_count(&self) -> bool {
        self.needs_pin() || !(self.empty_policy || self.policy_bound)
    }

    /// KeePassXC's serial: the handle as an unsigned 32-bit number.
    pub fn serial(&self) -> u32 {
        self.handle.serial()
    }

    /// KeePassXC's slot: always 1.
    pub fn slot(&self) -> i32 {
        SLOT
    }

    /// The key's name, e.g. "TPM 2.0 HMAC-SHA1 0x81000100", or with a label "TPM 2.0 HMAC-SHA1
    /// laptop" (KeePassXC adds " \[serial\] - Slot 1").
    pub fn display_name(&self) -> String {
        match &self.label {
            Some(label) => format!("TPM 2.0 {} {label}", self.algorithm),
            None if self.handle.is_file_key() => format!("TPM 2.0 {} key file {}", self.algorithm, self.handle),
            None => format!("TPM 2.0 {} {}", self.algorithm, self.handle),
        }
    }

    /// keepassxc-cli's `--yubikey` value for this key, e.g. "1:2164261120".
    pub fn keepassxc_address(&self) -> String {
        format!("{}:{}", self.slot(), self.serial())
    }
}

/// A key as `tpm-hmac list --json` and the Python module show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeySummary {
    /// The persistent handle, e.g. "0x81000100", or a key file's serial, e.g. "0x82a1b2c3".
    pub handle: String,
    /// Where the key is kept: "persistent" (a handle of the TPM) or "file" (a key file).
    pub kept_in: &'static str,
    /// KeePassXC's serial: the handle as an unsigned 32-bit number.
    pub serial: u32,
    /// KeePassXC's slot: always 1.
    pub slot: i32,
    /// The key's hash.
    pub algorithm: Algorithm,
    /// Whether the key was generated in the TPM or imported.
    pub origin: Origin,
    /// The key's name as KeePassXC shows it (see [`KeyInfo::display_name`]).
    pub display_name: String,
    /// keepassxc-cli's `--yubikey` value for this key.
    pub keepassxc: String,
    /// Exempt from dictionary-attack lockout (keys without a PIN).
    pub no_da: bool,
    /// Usable only while the PCRs it is bound to keep their values.
    pub pcr_bound: bool,
    /// The user's name for the key, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl From<&KeyInfo> for KeySummary {
    fn from(key: &KeyInfo) -> Self {
        KeySummary {
            handle: key.handle.to_string(),
            kept_in: if key.handle.is_file_key() { "file" } else { "persistent" },
            serial: key.serial(),
            slot: key.slot(),
            algorithm: key.algorithm,
            origin: key.origin,
            display_name: key.display_name(),
            keepassxc: key.keepassxc_address(),
            no_da: key.no_da,
            pcr_bound: key.policy_bound,
            label: key.label.clone(),
        }
    }
}

/// What `create` and `import` are asked to make.
#[derive(Clone, Debug, Default)]
pub struct KeySpec {
    /// Where to persist the key; `None` takes the first free handle of [`crate::PROJECT_RANGE`].
    pub handle: Option<PersistentHandle>,
    /// The key's hash (SHA-1 for a YubiKey-compatible key).
    pub algorithm: Algorithm,
    /// SHA-256 PCRs to bind the key to (empty: not bound).
    pub pcrs: Vec<u8>,
    /// A PIN the TPM checks (and rate-limits) on every use; `None`: no PIN, and the key is noDA.
    pub pin: Option<Pin>,
    /// The kind of YubiKey slot this key answers like (kept in its record).
    pub yubikey_mode: crate::challenge::SlotMode,
    /// A name for the key (see [`check_label`]), kept in its record.
    pub label: Option<String>,
    /// For a key without PIN or PCRs: make it in the form keys had before the empty policy,
    /// authorised with its empty authValue (so tools that cannot start a policy session, such as
    /// `tpm2_hmac -c HANDLE`, can use it). Such a key has its name read before every
    /// authorisation ([`KeyInfo::authorisation_may_count`]): two TPM commands per click instead
    /// of one behind a resource manager. Off by default; the CLI does not offer it.
    pub auth_value_form: bool,
}

/// The longest label, in characters.
pub const MAX_LABEL: usize = 32;

/// A label as the user typed it, trimmed, or why it cannot be one: labels are shown in
/// KeePassXC's key list, whose entries end in "\[serial\]", so no brackets; and in terminals, so
/// nothing that is not a visible character of a line (Unicode categories Cc, Cf, Zl, Zp: escape
/// sequences, newlines, the right-to-left override). Labels read from a record are checked
/// again: the file may have been edited.
pub fn check_label(text: &str) -> Result<String> {
    let label = text.trim();
    let bad = |reason: String| Err(Error::BadLabel { reason });
    if label.is_empty() {
        return bad("it is empty".into());
    }
    if label.chars().count() > MAX_LABEL {
        return bad(format!("it has more than {MAX_LABEL} characters"));
    }
    if let Some(c) = label.chars().find(|&c| invisible(c) || matches!(c, '[' | ']')) {
        return bad(format!("it holds {:?}; brackets, control and format characters cannot be shown", c));
    }
    Ok(label.to_owned())
}

/// Unicode's control (Cc), format (Cf), line (Zl) and paragraph separator (Zp) characters
/// (Unicode 15.1; the standard library knows only Cc).
fn invisible(c: char) -> bool {
    const FORMAT: [(u32, u32); 21] = [
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x2028, 0x202E), // Zl, Zp, then the bidirectional embeddings and overrides
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    c.is_control() || FORMAT.iter().any(|&(first, last)| (first..=last).contains(&(c as u32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keepassxc_can_show() {
        assert_eq!(check_label("  laptop ").unwrap(), "laptop");
        assert_eq!(check_label("Büro-Rechner 2").unwrap(), "Büro-Rechner 2");
        let hostile = [
            "\u{1b}[2J",
            "a\u{202E}gpj.exe",
            "line\u{2028}break",
            "para\u{2029}graph",
            "zero\u{200B}width",
            "\u{FEFF}bom",
        ];
        for bad in ["", "   ", "a[b", "x]", "tab\there", "new\nline", &"x".repeat(33)].into_iter().chain(hostile) {
            assert!(matches!(check_label(bad), Err(Error::BadLabel { .. })), "{bad:?}");
        }
    }
}
