//! What the user hands in besides flags: secret and PIN files (or stdin), and hex on the
//! command line. Read in full before any TPM work starts, so a slow file or a slow typist never
//! runs into the TPM's timeout; bounded, so `/dev/zero` or a huge file is refused, not read.

use std::fs::File;
use std::io::Read;
#[cfg(unix)]
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::CliError;

/// A secret, PIN or recovery-code file holds a line or two.
pub const MAX_INPUT: u64 = 4096;

/// The bytes of `path` (`-`: stdin), for `what` ("the secret file"); a UTF-8 byte-order mark
/// at the start is dropped.
pub fn read_small(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let shown = path.display();
    let cannot = |e: std::io::Error| CliError::Input(format!("cannot read {what} {shown}: {e}"));
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_INPUT as usize + 1));
    if path.as_os_str() == "-" {
        std::io::stdin().lock().take(MAX_INPUT + 1).read_to_end(&mut bytes).map_err(cannot)?;
    } else {
        let mut file = File::open(path).map_err(cannot)?;
        let info = file.metadata().map_err(cannot)?;
        let kind = info.file_type();
        #[cfg(unix)]
        let other_stream =
            kind.is_fifo() || kind.is_socket() || (kind.is_char_device() && rustix::termios::isatty(&file));
        #[cfg(windows)]
        let other_stream = false;
        if !(kind.is_file() || other_stream) {
            let is = if kind.is_dir() { "a directory" } else { "a device" };
            return Err(CliError::Input(format!("{what} {shown} is {is}, not a file")));
        }
        if kind.is_file() && info.len() > MAX_INPUT {
            return Err(too_large(what, path));
        }
        (&mut file).take(MAX_INPUT + 1).read_to_end(&mut bytes).map_err(cannot)?;
    }
    if bytes.len() as u64 > MAX_INPUT {
        return Err(too_large(what, path));
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    Ok(bytes)
}

fn too_large(what: &str, path: &Path) -> CliError {
    CliError::Input(format!("{what} {} has more than {MAX_INPUT} bytes; it should hold one line", path.display()))
}

/// [`read_small`] as text.
pub fn read_text(path: &Path, what: &str) -> Result<Zeroizing<String>, CliError> {
    let bytes = read_small(path, what)?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(CliError::Input(format!("{what} {} is not text (UTF-8)", path.display()))),
    }
}

/// The bytes of `text` given as hex for `what` ("the challenge"); spaces are not allowed.
pub fn parse_hex(text: &str, what: &str) -> Result<Vec<u8>, CliError> {
    let text = text.trim();
    if let Some((at, c)) = text.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(CliError::Input(format!(
            "{what} is not hex: character {} ('{}') is not a hex digit (0-9, a-f)",
            at + 1,
            c.escape_default()
        )));
    }
    if !text.len().is_multiple_of(2) {
        return Err(CliError::Input(format!(
            "{what} is not hex: {} digits is an odd number; a byte takes two",
            text.len()
        )));
    }
    hex::decode(text).map_err(|e| CliError::Input(format!("{what} is not hex ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_errors_name_the_character() {
        let CliError::Input(text) = parse_hex("üü", "the challenge").unwrap_err() else { panic!() };
        assert!(text.contains("character 1 ('\\u{fc}')"), "{text}");
        let CliError::Input(text) = parse_hex("abc", "the challenge").unwrap_err() else { panic!() };
        assert!(text.contains("odd number"), "{text}");
        assert_eq!(parse_hex(" 00ff\n", "x").ok(), Some(vec![0, 255]));
    }

    #[test]
    fn files_are_bounded_and_special_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        File::create(&big).unwrap().set_len(1 << 30).unwrap();
        assert!(matches!(read_small(&big, "the secret file"), Err(CliError::Input(t)) if t.contains("more than 4096")));
        for path in ["/dev/zero", "/dev/null"] {
            assert!(
                matches!(read_small(Path::new(path), "the PIN file"), Err(CliError::Input(t)) if t.contains("a device"))
            );
        }
        assert!(matches!(read_small(dir.path(), "the PIN file"), Err(CliError::Input(t)) if t.contains("a directory")));
        let bom = dir.path().join("bom");
        std::fs::write(&bom, b"\xEF\xBB\xBF0011\n").unwrap();
        assert_eq!(&read_text(&bom, "the secret file").ok().unwrap()[..], "0011\n");
    }
}
