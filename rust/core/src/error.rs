//! One error type for everything the core does. Each variant is something a person can act on;
//! its message says what is wrong and what to do, and TSS return codes are kept (as 0x%08X).

use std::fmt;

use crate::address::{BadHandle, PersistentHandle};

/// The result of every fallible operation of the core.
pub type Result<T> = std::result::Result<T, Error>;

/// TPM_E_COMMAND_BLOCKED: what Windows' TBS answers, as the response code, to a command it does
/// not let this user send.
pub const BLOCKED_BY_TBS: u32 = 0x8028_0400;

/// What went wrong. `Display` gives a single line with a remedy.
#[derive(Debug)]
pub enum Error {
    /// No TPM answered on the TCTI (no device, no simulator, module missing, connection lost).
    NoTpm {
        /// The TCTI that was tried (or "the default search").
        tcti: String,
        /// Why it did not answer.
        detail: String,
    },
    /// The TPM did not answer in time (it hangs, or a daemon in front of it does).
    Timeout {
        /// How long was waited for the answer.
        seconds: u64,
    },
    /// The TCTI configuration string could not be understood.
    UnknownTcti {
        /// The TCTI configuration string as given.
        tcti: String,
    },
    /// The TCTI configuration string has an option tss-esapi would drop without a word (it would
    /// then open another TPM than the one named, e.g. `swtpm:path=…` opens localhost:2321).
    TctiOption {
        /// The TCTI configuration string as given.
        tcti: String,
        /// The option, e.g. `path=/run/swtpm.sock`.
        option: String,
        /// The options that are passed on, e.g. "host, port".
        understood: String,
    },
    /// The TPM device exists but this user may not open it.
    PermissionDenied {
        /// The path of the TPM device, e.g. /dev/tpmrm0.
        device: String,
        /// The group that owns the device, if its name is known.
        group: Option<String>,
    },
    /// A handle string or serial that is not a persistent handle of the owner hierarchy.
    BadHandle(BadHandle),
    /// Nothing is stored at the handle.
    EmptyHandle {
        /// The persistent handle the key was looked for at.
        handle: PersistentHandle,
    },
    /// Something other than an HMAC key is stored at the handle.
    NotHmacKey {
        /// The persistent handle the key was looked for at.
        handle: PersistentHandle,
        /// What is stored there instead, e.g. "an RSA key".
        what: String,
    },
    /// `create`/`import` was asked for a handle that is already in use.
    HandleOccupied {
        /// The persistent handle that was asked for.
        handle: PersistentHandle,
        /// What already sits there.
        what: String,
    },
    /// Every handle of the project range (or the TPM's NV memory) is in use.
    NoFreeHandle {
        /// What is full: the project range, or the TPM's persistent memory.
        detail: String,
    },
    /// The TPM's dictionary-attack protection is locked out; one failure is forgotten every
    /// `interval_seconds`, when known.
    Lockout {
        /// The TPM's return code.
        rc: u32,
        /// Seconds after which one failure is forgotten, if the TPM said.
        interval_seconds: Option<u32>,
    },
    /// The key's PIN was wrong; `tries_left` before lockout, when known.
    AuthFailed {
        /// The TPM's return code.
        rc: u32,
        /// Wrong PINs the TPM still accepts before it locks out, if it said.
        tries_left: Option<u32>,
    },
    /// The key needs a PIN and none was given.
    PinRequired {
        /// The persistent handle of the key.
        handle: PersistentHandle,
    },
    /// An empty PIN was given: no PIN was entered (nothing is sent to the TPM, no try is spent).
    NoPinEntered,
    /// The key's policy (PCR binding) is not satisfied: the boot state changed.
    PolicyFailed {
        /// The TPM's return code.
        rc: u32,
    },
    /// The key has a policy, but which PCRs it binds is not in the metadata file.
    PolicyUnknown {
        /// The TPM's return code (0 when the key was not tried).
        rc: u32,
    },
    /// The storage key salting the session is not the one pinned when the key was made.
    StorageKeyChanged {
        /// The persistent handle of the key.
        handle: PersistentHandle,
    },
    /// The metadata file cannot be used (unreadable, not a regular file, too large, malformed).
    Metadata {
        /// The path of the metadata file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The metadata record of the key at a handle names another key than the one there.
    RecordMismatch {
        /// The persistent handle of the key.
        handle: PersistentHandle,
        /// The path of the metadata file holding the record.
        path: String,
    },
    /// A PIN key was asked for without bus encryption, which would send its authValue in clear.
    PinNeedsEncryption {
        /// The persistent handle of the key.
        handle: PersistentHandle,
    },
    /// The key was made, but its record could not be written, so it was removed again.
    NotRecorded {
        /// The persistent handle the key was made at.
        handle: PersistentHandle,
        /// Whether removing the key succeeded (if not, it is still at `handle`).
        removed: bool,
        /// Why the record could not be written.
        cause: Box<Error>,
    },
    /// The TPM refused a session's authorisation for a key without a PIN: the session HMAC did
    /// not match, so an answer was altered on the way (or the key is not what it seems).
    SessionRejected {
        /// The TPM's return code.
        rc: u32,
    },
    /// The TPM's answer did not parse, or failed its session's integrity check.
    BadAnswer {
        /// What was being done, e.g. "loading the key".
        operation: &'static str,
        /// The TSS return code.
        rc: u32,
    },
    /// A label the key list could not show.
    BadLabel {
        /// Why the label cannot be used.
        reason: String,
    },
    /// A secret to import is malformed; the reason says how.
    BadSecret {
        /// How the secret is malformed.
        reason: String,
    },
    /// A challenge longer than a YubiKey slot accepts.
    ChallengeTooLong {
        /// The length of the challenge, in bytes.
        len: usize,
    },
    /// The TPM has no room for another loaded object.
    OutOfMemory {
        /// What was being done.
        operation: &'static str,
        /// The TPM's return code.
        rc: u32,
    },
    /// Any other TPM or TSS failure.
    Tpm {
        /// What was being done.
        operation: &'static str,
        /// The TPM or TSS return code.
        rc: u32,
        /// The return code's meaning, as tss-esapi describes it.
        text: String,
    },
    /// The operating system's random generator failed (nothing was sent to the TPM).
    NoRandomness {
        /// What the operating system said.
        detail: String,
    },
    /// A key file that cannot be used (or a key-file key whose record cannot load it): nothing
    /// was sent to the TPM that needs authorisation.
    KeyFile {
        /// The file (or the key's serial, when its record is at fault).
        path: String,
        /// What is wrong, in words that follow "it".
        reason: String,
    },
    /// Windows (TBS) does not let this user send a TPM command: it answered
    /// TPM_E_COMMAND_BLOCKED (0x80280400) instead of passing it to the TPM.
    Blocked {
        /// The command, e.g. "TPM2_Create".
        command: &'static str,
    },
    /// A failure inside the tss-esapi wrapper, before anything reached the TPM.
    Wrapper {
        /// What was being done.
        operation: &'static str,
        /// The wrapper's description of the failure.
        text: String,
    },
}

/// The broad class of an [`Error`], for callers that map errors onto their own status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No TPM could be reached (or it did not answer in time).
    NoTpm,
    /// The TPM device may not be opened by this user.
    PermissionDenied,
    /// A handle, serial or slot that cannot name a TPM key.
    BadHandle,
    /// No key at the handle.
    NoSuchKey,
    /// Something other than an HMAC key at the handle.
    NotHmacKey,
    /// The handle asked for is already in use.
    HandleOccupied,
    /// No free persistent handle is left.
    NoFreeHandle,
    /// The TPM is locked out after too many wrong PINs.
    Lockout,
    /// The PIN was wrong.
    AuthFailed,
    /// The key needs a PIN and none was given.
    PinRequired,
    /// The key's PCR policy is not satisfied (or not known).
    PolicyFailed,
    /// A secret or label that cannot be used.
    BadSecret,
    /// A challenge that a YubiKey slot would not accept.
    BadChallenge,
    /// The storage key is not the one the key was made under.
    StorageKeyChanged,
    /// The metadata file or a key's record in it is unusable.
    Metadata,
    /// Any other failure.
    Other,
}

impl Error {
    /// The broad class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoTpm { .. } | Error::UnknownTcti { .. } | Error::TctiOption { .. } | Error::Timeout { .. } => {
                ErrorKind::NoTpm
            }
            Error::PermissionDenied { .. } | Error::Blocked { .. } => ErrorKind::PermissionDenied,
            Error::BadHandle(_) => ErrorKind::BadHandle,
            Error::EmptyHandle { .. } => ErrorKind::NoSuchKey,
            Error::NotHmacKey { .. } => ErrorKind::NotHmacKey,
            Error::HandleOccupied { .. } => ErrorKind::HandleOccupied,
            Error::NoFreeHandle { .. } => ErrorKind::NoFreeHandle,
            Error::Lockout { .. } => ErrorKind::Lockout,
            Error::AuthFailed { .. } => ErrorKind::AuthFailed,
            Error::PinRequired { .. } | Error::NoPinEntered => ErrorKind::PinRequired,
            Error::PolicyFailed { .. } | Error::PolicyUnknown { .. } => ErrorKind::PolicyFailed,
            Error::BadSecret { .. } | Error::BadLabel { .. } => ErrorKind::BadSecret,
            Error::StorageKeyChanged { .. } => ErrorKind::StorageKeyChanged,
            Error::Metadata { .. }
            | Error::RecordMismatch { .. }
            | Error::NotRecorded { .. }
            | Error::KeyFile { .. } => ErrorKind::Metadata,
            Error::PinNeedsEncryption { .. } => ErrorKind::Other,
            Error::ChallengeTooLong { .. } => ErrorKind::BadChallenge,
            Error::OutOfMemory { .. }
            | Error::Tpm { .. }
            | Error::Wrapper { .. }
            | Error::SessionRejected { .. }
            | Error::BadAnswer { .. }
            | Error::NoRandomness { .. } => ErrorKind::Other,
        }
    }
}

impl From<BadHandle> for Error {
    fn from(bad: BadHandle) -> Self {
        Error::BadHandle(bad)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoTpm { tcti, detail } => write!(f, "no TPM reachable through {tcti} ({detail})"),
            Error::Timeout { seconds } => {
                write!(f, "the TPM did not answer within {seconds} s; it may be hung or busy")
            }
            Error::UnknownTcti { tcti } => write!(f, "unknown TCTI \"{tcti}\""),
            Error::TctiOption { tcti, option, .. } => {
                write!(f, "the TCTI \"{tcti}\" has the option \"{option}\", which cannot be passed on to tpm2-tss")
            }
            Error::PermissionDenied { device, .. } => write!(f, "permission denied opening {device}"),
            Error::BadHandle(bad) => write!(f, "{bad}"),
            Error::EmptyHandle { handle } => write!(f, "no key at {handle} (was it deleted, or the TPM cleared?)"),
            Error::NotHmacKey { handle, what } => write!(f, "the TPM object at {handle} is {what}, not an HMAC key"),
            Error::HandleOccupied { handle, what } => write!(f, "{handle} already holds {what}"),
            Error::NoFreeHandle { detail } => {
                // Which key to delete, and how, each front end says in its own words.
                write!(f, "no free persistent slot ({detail})")
            }
            Error::Lockout { rc, interval_seconds } => {
                write!(f, "the TPM is locked after too many wrong PINs (TPM_RC_LOCKOUT, 0x{rc:08X})")?;
                match interval_seconds.filter(|s| *s > 0) {
                    Some(s) => write!(f, "; it allows another try after {s} s (one failure is forgotten every {s} s)"),
                    None => Ok(()),
                }
            }
            Error::AuthFailed { rc, tries_left } => {
                write!(f, "wrong PIN (0x{rc:08X})")?;
                match tries_left {
                    Some(0) => write!(f, "; no tries left: the TPM now locks out PIN-protected keys"),
                    Some(n) => {
                        write!(f, "; {n} {} left before the TPM locks out", if *n == 1 { "try" } else { "tries" })
                    }
                    None => write!(f, "; each wrong PIN counts toward the TPM's lockout"),
                }
            }
            Error::PinRequired { handle } => {
                write!(f, "the key at {handle} is protected by a PIN, and none was given")
            }
            Error::NoPinEntered => write!(f, "no PIN was entered (an empty PIN is never sent to the TPM)"),
            Error::PolicyFailed { rc } => write!(
                f,
                "the boot state (PCR values) changed since the key was created, so the TPM refuses it (0x{rc:08X})"
            ),
            Error::PolicyUnknown { rc } => {
                write!(
                    f,
                    "the key is bound to PCRs (boot state) but the keepassxc-tpm metadata file does not say which"
                )?;
                if *rc != 0 {
                    write!(f, " (0x{rc:08X})")?;
                }
                Ok(())
            }
            Error::BadAnswer { operation, rc } => write!(
                f,
                "{operation}: the TPM's answer is malformed or failed its integrity check (0x{rc:08X}); it may \
                 have been altered on the way between TPM and CPU"
            ),
            Error::SessionRejected { rc } => write!(
                f,
                "the TPM rejected the session that authorises the key (0x{rc:08X}): its answers may have been \
                 altered on the way between TPM and CPU"
            ),
            Error::BadSecret { reason } => write!(f, "bad secret: {reason}"),
            Error::BadLabel { reason } => write!(f, "bad label: {reason}"),
            Error::Metadata { path, reason } => {
                write!(f, "the keepassxc-tpm metadata file {path} cannot be used: {reason}")
            }
            Error::KeyFile { path, reason } => write!(f, "the key file {path} cannot be used: {reason}"),
            Error::RecordMismatch { handle, path } => write!(
                f,
                "the key at {handle} is not the key recorded for it in {path}: this is another TPM, the key was \
                 replaced, or something between TPM and CPU answers for it"
            ),
            Error::PinNeedsEncryption { handle } => write!(
                f,
                "the key at {handle} has a PIN, which is only used in an encrypted session: without bus \
                 encryption it would cross the bus in clear"
            ),
            Error::NotRecorded { handle, removed: true, cause } => {
                write!(f, "the key at {handle} was removed again because its record could not be saved: {cause}")
            }
            Error::NotRecorded { handle, removed: false, cause } => write!(
                f,
                "the key at {handle} was made but its record could not be saved ({cause}), and removing it \
                 failed too"
            ),
            Error::StorageKeyChanged { handle } if handle.is_file_key() => write!(
                f,
                "the TPM's storage key is not the one the key file {handle} was made under: this is another TPM, \
                 the TPM was cleared, or something between TPM and CPU is answering for it; loading the key file \
                 was not tried"
            ),
            Error::StorageKeyChanged { handle } => write!(
                f,
                "the TPM's storage key is not the one {handle} was created under: this is a different TPM, or \
                 something between TPM and CPU is answering for it"
            ),
            Error::ChallengeTooLong { len } => {
                write!(f, "the challenge has {len} bytes; a YubiKey-compatible slot accepts at most 64")
            }
            Error::OutOfMemory { operation, rc } => {
                write!(f, "{operation}: the TPM has no room for another loaded object or session (0x{rc:08X})")
            }
            Error::Tpm { operation, rc, text } => write!(f, "{operation} failed: {text} (0x{rc:08X})"),
            Error::Wrapper { operation, text } => write!(f, "{operation} failed: {text}"),
            Error::Blocked { command } => write!(
                f,
                "Windows blocks the TPM command {command} for this user (TBS answered 0x{:08X} without passing it to the TPM)",
                BLOCKED_BY_TBS
            ),
            Error::NoRandomness { detail } => {
                write!(f, "the operating system's random generator failed ({detail}); nothing was sent to the TPM")
            }
        }
    }
}

impl std::error::Error for Error {}

/// What a person can do about an [`Error`]: the kind of remedy, which each front end says in its
/// own words (the CLI with its flags, Python with its arguments, KeePassXC's driver in its
/// dialog); its `Display` is the wording for a front end with none of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hint {
    /// Enable the TPM in the firmware, or start the simulator.
    EnableTpm,
    /// Try again; restart the resource manager or the computer if it persists.
    RetryOrRestart,
    /// Name the TPM with a TCTI string of a known kind.
    KnownTcti,
    /// Name the TPM with these options only.
    TctiOptions {
        /// The options the TCTI module takes.
        understood: String,
    },
    /// Join the group that owns the TPM device, and log in again.
    JoinGroup {
        /// The group.
        group: String,
    },
    /// Ask the administrator for access to the TPM device.
    AskForAccess,
    /// Free a persistent slot by deleting a key.
    FreeSlot,
    /// Have the TPM owner reset the dictionary-attack lockout (or wait until it lets a try through).
    ResetLockout,
    /// Boot as before, or re-import the key from its recovery code.
    BootAsBefore,
    /// Restore the metadata file, or re-import the key from its recovery code.
    RestoreRecord,
    /// Try again, and do not unlock here if it persists: something may alter the TPM's answers.
    DistrustTheBus,
    /// Fix the metadata file or move it away.
    FixMetadataFile,
    /// The key at `handle` was replaced on purpose: remove its record.
    RemoveRecord {
        /// The key's handle.
        handle: PersistentHandle,
    },
    /// The SRK was replaced on purpose: remove the record of the key at `handle`.
    StorageKeyReplaced {
        /// The key's handle.
        handle: PersistentHandle,
    },
    /// Delete the half-made key at `handle` and try again.
    DeleteAndRetry {
        /// The key's handle.
        handle: PersistentHandle,
    },
    /// Free the TPM's transient objects, and use a resource manager.
    FlushTransients,
    /// Windows blocks a command this user needs: report which (the probe), or try as an administrator.
    WindowsBlocks,
}

impl Error {
    /// What a person can do about this error, if anything (see [`Hint`]).
    pub fn hint(&self) -> Option<Hint> {
        Some(match self {
            Error::NoTpm { .. } => Hint::EnableTpm,
            Error::Blocked { .. } => Hint::WindowsBlocks,
            Error::Timeout { .. } => Hint::RetryOrRestart,
            Error::UnknownTcti { .. } => Hint::KnownTcti,
            Error::TctiOption { understood, .. } => Hint::TctiOptions { understood: understood.clone() },
            Error::PermissionDenied { group: Some(group), .. } => Hint::JoinGroup { group: group.clone() },
            Error::PermissionDenied { group: None, .. } => Hint::AskForAccess,
            Error::NoFreeHandle { .. } => Hint::FreeSlot,
            Error::Lockout { .. } => Hint::ResetLockout,
            Error::PolicyFailed { .. } => Hint::BootAsBefore,
            Error::PolicyUnknown { .. } => Hint::RestoreRecord,
            Error::BadAnswer { .. } | Error::SessionRejected { .. } => Hint::DistrustTheBus,
            Error::Metadata { .. } => Hint::FixMetadataFile,
            Error::RecordMismatch { handle, .. } => Hint::RemoveRecord { handle: *handle },
            Error::StorageKeyChanged { handle } => Hint::StorageKeyReplaced { handle: *handle },
            Error::NotRecorded { handle, removed: false, .. } => Hint::DeleteAndRetry { handle: *handle },
            Error::NotRecorded { removed: true, cause, .. } => return cause.hint(),
            Error::OutOfMemory { .. } => Hint::FlushTransients,
            _ => return None,
        })
    }

    /// What is wrong with a record file, in words that follow "it" and without the file's name (the
    /// caller names it); any other error as it displays.
    pub fn file_reason(self) -> String {
        match self {
            Error::Metadata { reason, .. } => reason,
            other => other.to_string(),
        }
    }

    /// What happened and, in the general wording, what to do about it: for front ends with no
    /// words of their own.
    pub fn explained(&self) -> String {
        match self.hint() {
            Some(hint) => format!("{self}; {hint}"),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hint::EnableTpm => write!(f, "check that the TPM is enabled in the firmware or that the simulator runs"),
            Hint::RetryOrRestart => {
                write!(f, "try again, and if it persists restart the TPM resource manager (tpm2-abrmd) or the computer")
            }
            Hint::KnownTcti => write!(f, "use e.g. device:/dev/tpmrm0, tabrmd:, swtpm:host=127.0.0.1,port=2321"),
            Hint::TctiOptions { understood } => write!(f, "name the TPM with {understood} only"),
            Hint::JoinGroup { group } => {
                write!(f, "add yourself to the \"{group}\" group (sudo usermod -aG {group} $USER) and log in again")
            }
            Hint::AskForAccess => write!(f, "ask your administrator for access to it"),
            Hint::FreeSlot => write!(f, "delete a key you no longer need"),
            Hint::ResetLockout => {
                write!(f, "or the TPM owner can reset it with: tpm2_dictionarylockout --clear-lockout")
            }
            Hint::BootAsBefore => write!(
                f,
                "boot as before (e.g. the same Secure Boot settings), or re-import the key from its recovery code"
            ),
            Hint::RestoreRecord => write!(f, "restore that file, or re-import the key from its recovery code"),
            Hint::DistrustTheBus => write!(f, "try again, and do not unlock here if it persists"),
            Hint::FixMetadataFile => {
                write!(f, "fix it or move it away (keys are then pinned again on their next use)")
            }
            Hint::RemoveRecord { handle } => {
                write!(f, "if you replaced it yourself, remove the entry for {handle} from that file")
            }
            Hint::StorageKeyReplaced { handle } => write!(
                f,
                "if you replaced the SRK at 0x81000001 yourself, remove the entry for {handle} from the \
                 keepassxc-tpm metadata file (it is pinned again on the next use)"
            ),
            Hint::DeleteAndRetry { handle } => write!(f, "delete the key at {handle} and try again"),
            Hint::FlushTransients => write!(
                f,
                "a program that was killed may have left objects or sessions loaded: free them with \
                 `tpm2_flushcontext -t -l -s` (or restart the simulator), and use a resource manager \
                 (/dev/tpmrm0, or tpm2-abrmd) so that this cannot happen"
            ),
            Hint::WindowsBlocks => write!(
                f,
                "run `tpm-hmac doctor --probe-commands` and send its report to the project; an administrator's \
                 account may be allowed the command"
            ),
        }
    }
}
