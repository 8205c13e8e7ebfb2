//! The CLI's errors: the core's, which say what happened to the TPM or a key, with the remedy
//! that fits this front end (its flags, its commands); and mistakes in what the user gave.

use std::fmt;

use keepassxc_tpm::{Error, Hint};

pub enum CliError {
    /// What the core reported.
    Tpm(Error),
    /// Bad input on the command line or in a file; the text says what and where.
    Input(String),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Tpm(e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = match self {
            CliError::Input(text) => return f.write_str(text),
            CliError::Tpm(e) => e,
        };
        write!(f, "{e}")?;
        // The core's remedy, in this front end's words where it has its own.
        match (e.hint(), own_words(e)) {
            (_, Some(words)) => write!(f, "; {words}")?,
            (Some(hint), None) => write!(f, "; {hint}")?,
            (None, None) => {}
        }
        match remedy(e) {
            Some(remedy) => write!(f, "; {remedy}"),
            None => Ok(()),
        }
    }
}

/// The core's remedy for `e` as this front end says it (with its commands), where it says it so.
fn own_words(e: &Error) -> Option<&'static str> {
    match e.hint()? {
        Hint::FreeSlot => Some("delete a key you no longer need with `tpm-hmac delete --handle HANDLE`"),
        _ => None,
    }
}

/// What this front end adds about `e` (its flags and commands), beyond the core's remedy.
pub fn remedy(e: &Error) -> Option<&'static str> {
    Some(match e {
        #[cfg(unix)]
        Error::NoTpm { .. } | Error::UnknownTcti { .. } => "pick another TPM with --tcti or TPM2TOOLS_TCTI",
        #[cfg(windows)]
        Error::NoTpm { .. } => "tpm.msc shows whether Windows sees a TPM 2.0 and whether it is ready for use",
        Error::HandleOccupied { .. } => {
            "choose a free handle with --handle, or leave --handle out to take the next free one"
        }
        Error::PinRequired { .. } => "type it when asked, or give --pin-file",
        Error::PinNeedsEncryption { .. } => "leave out --no-bus-encryption",
        Error::EmptyHandle { .. } | Error::NotHmacKey { .. } => "run `tpm-hmac list` to see the HMAC keys in this TPM",
        _ => return None,
    })
}
