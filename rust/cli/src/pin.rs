//! Reading a PIN: from a file (`--pin-file`, for scripts), else from the terminal without echo.
//! Never from the command line, where other users could read it in the process list.

use std::path::Path;

use keepassxc_tpm::{Error, Pin};
use zeroize::Zeroizing;

/// The PIN in `file`, or asked on the terminal with `prompt`.
pub fn read(file: Option<&Path>, prompt: &str) -> Result<Pin, Error> {
    let text =
        match file {
            Some(path) => Zeroizing::new(std::fs::read_to_string(path).map_err(|e| Error::BadSecret {
                reason: format!("cannot read the PIN file {}: {e}", path.display()),
            })?),
            None => Zeroizing::new(rpassword::prompt_password(prompt).map_err(|e| Error::BadSecret {
                reason: format!("cannot read a PIN from the terminal ({e}); use --pin-file"),
            })?),
        };
    Pin::new(&text)
}

/// A new PIN: from `file`, or typed twice on the terminal.
pub fn read_new(file: Option<&Path>) -> Result<Pin, Error> {
    if file.is_some() {
        return read(file, "");
    }
    let first = read(None, "New PIN for the key: ")?;
    let again = read(None, "Repeat the PIN: ")?;
    if first.matches(&again) {
        Ok(first)
    } else {
        Err(Error::BadSecret { reason: "the two PINs differ; nothing was created".into() })
    }
}
