//! Reading a PIN: from a file (`--pin-file`, for scripts), else from the terminal without echo.
//! Never from the command line, where other users could read it in the process list.
//!
//! Echo is switched off only while the PIN is typed, and switched back on on every way out:
//! the line is read, reading fails, or the user presses Ctrl-C (or the process gets SIGTERM or
//! SIGHUP), when the terminal is restored before the process exits with status 130.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Mutex, Once};

use keepassxc_tpm::Pin;
use rustix::termios::{self, LocalModes, OptionalActions, Termios};
use zeroize::Zeroizing;

use crate::error::CliError;
use crate::input;

/// The longest PIN read from the terminal.
const MAX_PIN: usize = 1024;

/// The terminal and its settings while echo is off, for the signal handler.
static ECHO_OFF: Mutex<Option<(File, Termios)>> = Mutex::new(None);

/// Restores the terminal when the process is interrupted while a PIN is being typed. Installed
/// with the first prompt: its thread is not started by commands that ask nothing.
fn install_interrupt_handler() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            let was_asking = restore_echo();
            if was_asking {
                eprintln!();
            }
            std::process::exit(130);
        });
    });
}

fn restore_echo() -> bool {
    let saved = ECHO_OFF.lock().unwrap_or_else(|p| p.into_inner()).take();
    match saved {
        Some((tty, settings)) => {
            let _ = termios::tcsetattr(&tty, OptionalActions::Now, &settings);
            true
        }
        None => false,
    }
}

/// The PIN in `file`, or asked on the terminal with `prompt`.
pub fn read(file: Option<&Path>, prompt: &str) -> Result<Pin, CliError> {
    let bytes = match file {
        Some(path) => input::read_small(path, "the PIN file")?,
        None => ask(prompt)?,
    };
    Pin::new(&bytes[..]).map_err(|_| CliError::Input("the PIN is empty".to_owned()))
}

/// A new PIN: from `file`, or typed twice on the terminal.
pub fn read_new(file: Option<&Path>) -> Result<Pin, CliError> {
    if file.is_some() {
        return read(file, "");
    }
    let first = read(None, "New PIN for the key: ")?;
    let again = read(None, "Repeat the PIN: ")?;
    if first.matches(&again) {
        Ok(first)
    } else {
        Err(CliError::Input("the two PINs differ; nothing was created".into()))
    }
}

/// One line typed on the controlling terminal, without echo.
fn ask(prompt: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let no_terminal = |e: std::io::Error| {
        CliError::Input(format!("cannot ask for the PIN: no terminal ({e}); give it with --pin-file"))
    };
    let mut tty = OpenOptions::new().read(true).write(true).open("/dev/tty").map_err(no_terminal)?;
    install_interrupt_handler();
    let saved = termios::tcgetattr(&tty).map_err(|e| no_terminal(e.into()))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    // Recorded before echo goes off, so an interrupt at any point restores it.
    *ECHO_OFF.lock().unwrap_or_else(|p| p.into_inner()) = Some((tty.try_clone().map_err(no_terminal)?, saved));
    let line = termios::tcsetattr(&tty, OptionalActions::Flush, &quiet)
        .map_err(std::io::Error::from)
        .and_then(|()| tty.write_all(prompt.as_bytes()))
        .and_then(|()| read_line(&mut tty));
    restore_echo();
    line.map_err(|e| CliError::Input(format!("cannot read the PIN from the terminal ({e})")))
}

/// Reads up to a newline (not kept); end of input ends the line too.
fn read_line(tty: &mut File) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_PIN));
    let mut byte = Zeroizing::new([0u8; 1]);
    while line.len() < MAX_PIN {
        match tty.read(&mut byte[..])? {
            0 => break,
            _ if byte[0] == b'\n' => break,
            _ => line.push(byte[0]),
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}
