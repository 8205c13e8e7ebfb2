//! The CLI's errors: the core's, which say what happened to the TPM or a key, with the remedy
//! that fits this front end (its flags, its commands); and mistakes in what the user gave.

use std::fmt;

use keepassxc_tpm::Error;

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
        match remedy(e) {
            Some(remedy) => write!(f, "; {remedy}"),
            None => Ok(()),
        }
    }
}

/// What this front end tells a user to do about `e`, when it can tell more than the error does.
pub fn remedy(e: &Error) -> Option<&'static str> {
    Some(match e {
        Error::NoTpm { .. } | Error::UnknownTcti { .. } => "pick another TPM with --tcti or TPM2TOOLS_TCTI",
        Error::HandleOccupied { .. } => {
            "choose a free handle with --handle, or leave --handle out to take the next free one"
        }
        Error::PinRequired { .. } => "type it when asked, or give --pin-file",
        Error::PinNeedsEncryption { .. } => "leave out --no-bus-encryption",
        Error::NoFreeHandle { .. } => "delete a key you no longer need with `tpm-hmac delete --handle HANDLE`",
        Error::EmptyHandle { .. } | Error::NotHmacKey { .. } => "run `tpm-hmac list` to see the HMAC keys in this TPM",
        _ => return None,
    })
}
