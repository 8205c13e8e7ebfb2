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
        match e {
            Error::NoTpm { .. } | Error::UnknownTcti { .. } => {
                f.write_str("; pick another TPM with --tcti or TPM2TOOLS_TCTI")
            }
            Error::HandleOccupied { .. } => {
                f.write_str("; choose a free handle with --handle, or leave --handle out to take the next free one")
            }
            Error::PinRequired { .. } => f.write_str("; type it when asked, or give --pin-file"),
            Error::PinNeedsEncryption { .. } => f.write_str("; leave out --no-bus-encryption"),
            Error::NoFreeHandle { .. } => {
                f.write_str("; delete a key you no longer need with `tpm-hmac delete --handle HANDLE`")
            }
            Error::EmptyHandle { .. } | Error::NotHmacKey { .. } => {
                f.write_str("; run `tpm-hmac list` to see the HMAC keys in this TPM")
            }
            _ => Ok(()),
        }
    }
}
