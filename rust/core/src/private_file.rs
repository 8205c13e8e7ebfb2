//! The operating system's part of handling the record file and key files as hostile input and
//! writing them privately: opening without following a link or blocking on a special file,
//! creating private files and directories, and saying what a non-file is.
//!
//! - Unix: `O_NOFOLLOW | O_NONBLOCK`, modes 0600 and 0700.
//! - Windows: `FILE_FLAG_OPEN_REPARSE_POINT`, so a symbolic link or junction is opened as itself
//!   and refused, never followed. Files and directories are made under
//!   `%LOCALAPPDATA%\keepassxc-tpm`, whose inherited ACL (the user profile's: the user, SYSTEM and
//!   Administrators) keeps them private to the user; no Unix mode exists to check.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// The error of opening a path that is a link (its text follows "it").
#[derive(Debug)]
struct ALink;

impl std::fmt::Display for ALink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("it is a symbolic link")
    }
}

impl std::error::Error for ALink {}

/// Opens `path` for reading without following a link (an error [`is_link`] tells) or blocking on a
/// FIFO or device.
pub(crate) fn open_no_follow(path: &Path) -> io::Result<File> {
    let file = read_options().open(path).map_err(|e| if is_link_error(&e) { io::Error::other(ALink) } else { e })?;
    refuse_link(&file)?;
    Ok(file)
}

/// Whether `error` (from [`open_no_follow`] or [`open_lock`]) says the path was a link.
pub(crate) fn is_link(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<ALink>())
}

/// A new private file at `path` (never an existing one, never through a link).
pub(crate) fn create_new_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    private_options(&mut options).open(path)
}

/// Opens or creates the private lock file at `path`, read-write, not through a link.
pub(crate) fn open_lock(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    let file = private_options(&mut options).open(path)?;
    refuse_link(&file)?;
    Ok(file)
}

/// Creates `dir` and its parents, the new ones private (0700 on Unix).
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    dir_builder().create(dir)
}

/// Whether a path's lookup failed because a component is not a directory (nothing is there).
pub(crate) fn is_not_a_directory(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotADirectory
}

#[cfg(unix)]
mod imp {
    use std::fs::{DirBuilder, File, FileType, OpenOptions};
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};

    pub(super) fn read_options() -> OpenOptions {
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
        options
    }

    pub(super) fn private_options(options: &mut OpenOptions) -> &mut OpenOptions {
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
    }

    pub(super) fn is_link_error(error: &std::io::Error) -> bool {
        error.raw_os_error() == Some(libc::ELOOP)
    }

    /// `O_NOFOLLOW` refused a link already.
    pub(super) fn refuse_link(_file: &File) -> std::io::Result<()> {
        Ok(())
    }

    pub(super) fn dir_builder() -> DirBuilder {
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        builder
    }

    /// What a file type other than a regular file or a link is, for a person.
    pub(crate) fn kind_of(file_type: &FileType) -> &'static str {
        if file_type.is_dir() {
            "a directory"
        } else if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_char_device() || file_type.is_block_device() {
            "a device"
        } else if file_type.is_socket() {
            "a socket"
        } else {
            "a special file"
        }
    }
}

#[cfg(windows)]
mod imp {
    use std::fs::{DirBuilder, File, FileType, OpenOptions};
    use std::os::windows::fs::{MetadataExt, OpenOptionsExt};

    /// Open a reparse point (symbolic link, junction) as itself instead of its target.
    const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
    const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x0000_0400;

    pub(super) fn read_options() -> OpenOptions {
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
        options
    }

    pub(super) fn private_options(options: &mut OpenOptions) -> &mut OpenOptions {
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
    }

    pub(super) fn is_link_error(_error: &std::io::Error) -> bool {
        false
    }

    /// A reparse point opened as itself is refused.
    pub(super) fn refuse_link(file: &File) -> std::io::Result<()> {
        if file.metadata()?.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Err(std::io::Error::other(super::ALink));
        }
        Ok(())
    }

    pub(super) fn dir_builder() -> DirBuilder {
        let mut builder = DirBuilder::new();
        builder.recursive(true);
        builder
    }

    /// What a file type other than a regular file or a link is, for a person.
    pub(crate) fn kind_of(file_type: &FileType) -> &'static str {
        if file_type.is_dir() {
            "a directory"
        } else {
            "a special file"
        }
    }
}

pub(crate) use imp::kind_of;
use imp::{dir_builder, is_link_error, private_options, read_options, refuse_link};
