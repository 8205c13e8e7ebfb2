//! TSS2 PRIVATE KEY files (draft-bottomley-tpm2-keys), the form the OpenSSL tpm2 provider,
//! ssh-tpm-agent, age-plugin-tpm and the kernel's trusted keys keep a TPM key in outside the TPM:
//! the key's public area and its private part wrapped by the storage key, useless on any other TPM.
//!
//! ```text
//! TPMKey ::= SEQUENCE {
//!     type        OBJECT IDENTIFIER,          -- id-loadablekey 2.23.133.10.1.3
//!     emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
//!     policy      [1] EXPLICIT SEQUENCE OF TPMPolicy OPTIONAL,
//!     secret      [2] EXPLICIT OCTET STRING OPTIONAL,
//!     authPolicy  [3] EXPLICIT SEQUENCE OF TPMAuthPolicy OPTIONAL,
//!     parent      INTEGER,                    -- 0x40000001: the standard ECC P-256 storage primary
//!     pubkey      OCTET STRING,               -- TPM2B_PUBLIC
//!     privkey     OCTET STRING }              -- TPM2B_PRIVATE
//! ```
//!
//! The DER is read and written by RustCrypto's `der`, the PEM armour by `base64ct` (constant time).
//! Only loadable keys without the optional policy fields are read: this project keeps a key's policy
//! in its public area (the TPM checks it), so a file that describes policies is another program's.
#![forbid(unsafe_code)]

use std::fmt;
use std::io::Read;
#[cfg(unix)]
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use base64ct::{Base64, Encoding};
use der::asn1::{Any, ContextSpecific, ContextSpecificRef, ObjectIdentifier, OctetString};
use der::{Decode, DecodeValue, Encode, EncodeValue, Header, Length, Reader, Sequence, TagMode, TagNumber, Writer};

/// id-loadablekey: a key loaded under its parent with TPM2_Load.
pub const LOADABLE_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.10.1.3");

/// The parent "the primary made from the standard ECC P-256 storage template" (the SRK at
/// 0x81000001 is that primary made persistent, when its public area matches the template).
pub const STANDARD_PARENT: u32 = 0x4000_0001;

/// The PEM label.
pub const PEM_LABEL: &str = "TSS2 PRIVATE KEY";

/// The most bytes a key file may have: an HMAC key's file has under 1 KiB; the largest TPM2B_PUBLIC
/// and TPM2B_PRIVATE of any key fit in a few.
pub const MAX_FILE_SIZE: u64 = 16 * 1024;

/// A key as its file holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// The key needs no authorisation value (`emptyAuth`); a key with a PIN has `false`.
    pub empty_auth: bool,
    /// The parent's handle ([`STANDARD_PARENT`], or a persistent handle).
    pub parent: u32,
    /// The TPM2B_PUBLIC, as TPM2_Create returned it (its 2-byte size first).
    pub public: Vec<u8>,
    /// The TPM2B_PRIVATE, wrapped by the parent (its 2-byte size first).
    pub private: Vec<u8>,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("empty_auth", &self.empty_auth)
            .field("parent", &format_args!("0x{:08X}", self.parent))
            .field("public", &format_args!("{} bytes", self.public.len()))
            .field("private", &format_args!("{} bytes", self.private.len()))
            .finish()
    }
}

/// Why a file is not a key file this version can use. `Display` says what is wrong, in words that
/// follow "it" (front ends name the file and add what to do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyFileError {
    /// It could not be opened or read.
    Unreadable(String),
    /// A symlink, a directory, a device, too large, or writable by others.
    NotAPlainFile(String),
    /// Not PEM with the TSS2 PRIVATE KEY label.
    NotPem(String),
    /// The DER inside is not a TPMKey.
    Malformed(String),
    /// A TPMKey of another type than a loadable key.
    OtherType(String),
    /// It describes policies or an imported secret, which this version does not use.
    Unsupported(&'static str),
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Unreadable(why) => write!(f, "cannot read it ({why})"),
            KeyFileError::NotAPlainFile(why) => write!(f, "{why}"),
            KeyFileError::NotPem(why) => write!(f, "it is not a {PEM_LABEL} file ({why})"),
            KeyFileError::Malformed(why) => write!(f, "it is a damaged {PEM_LABEL} ({why})"),
            KeyFileError::OtherType(oid) => {
                write!(f, "it holds a TPM key of type {oid}, not a loadable key ({LOADABLE_KEY})")
            }
            KeyFileError::Unsupported(what) => write!(f, "it holds {what}, which this version does not use"),
        }
    }
}

impl std::error::Error for KeyFileError {}

impl KeyFile {
    /// The DER of the TPMKey.
    pub fn to_der(&self) -> Vec<u8> {
        // Encoding into a Vec fails only on lengths beyond the TPM2B sizes this type holds.
        self.to_der_checked().unwrap_or_default()
    }

    fn to_der_checked(&self) -> der::Result<Vec<u8>> {
        Encode::to_der(self)
    }

    /// The file's text: PEM with 64-character lines.
    pub fn to_pem(&self) -> String {
        let body = Base64::encode_string(&self.to_der());
        let mut pem = format!("-----BEGIN {PEM_LABEL}-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
        pem
    }

    /// The key in the DER `bytes`; nothing may follow the TPMKey.
    pub fn from_der(bytes: &[u8]) -> Result<KeyFile, KeyFileError> {
        let raw = RawKey::from_der(bytes).map_err(|e| KeyFileError::Malformed(e.to_string()))?;
        if raw.kind != LOADABLE_KEY {
            return Err(KeyFileError::OtherType(raw.kind.to_string()));
        }
        if let Some(what) = raw.unsupported {
            return Err(KeyFileError::Unsupported(what));
        }
        let key = raw.key;
        check_tpm2b(&key.public, "pubkey")?;
        check_tpm2b(&key.private, "privkey")?;
        Ok(key)
    }

    /// The key in the PEM `text` (one block, label TSS2 PRIVATE KEY; blank lines and spaces at the
    /// ends of lines are allowed, nothing else around it).
    pub fn from_pem(text: &str) -> Result<KeyFile, KeyFileError> {
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let begin = format!("-----BEGIN {PEM_LABEL}-----");
        let end = format!("-----END {PEM_LABEL}-----");
        match (lines.first(), lines.last()) {
            (Some(first), Some(last)) if *first == begin && *last == end && lines.len() >= 2 => {}
            (Some(first), _) if first.starts_with("-----BEGIN ") => {
                return Err(KeyFileError::NotPem(format!("its label is \"{}\"", label_of(first))))
            }
            _ => {
                return Err(KeyFileError::NotPem(format!("it does not start with \"{begin}\" and end with \"{end}\"")))
            }
        }
        let body: String = lines[1..lines.len() - 1].concat();
        let der = Base64::decode_vec(&body).map_err(|e| KeyFileError::NotPem(format!("bad base64: {e}")))?;
        KeyFile::from_der(&der)
    }

    /// The key file at `path`: a regular file (a symlink is not followed), at most
    /// [`MAX_FILE_SIZE`] bytes, that no one but its owner (and root) may write.
    pub fn read(path: &Path) -> Result<KeyFile, KeyFileError> {
        let mut file = crate::private_file::open_no_follow(path).map_err(|e| {
            if crate::private_file::is_link(&e) {
                KeyFileError::NotAPlainFile(e.to_string())
            } else {
                KeyFileError::Unreadable(e.to_string())
            }
        })?;
        let info = file.metadata().map_err(|e| KeyFileError::Unreadable(e.to_string()))?;
        if !info.file_type().is_file() {
            return Err(KeyFileError::NotAPlainFile("it is not a regular file".to_owned()));
        }
        #[cfg(unix)]
        if info.mode() & 0o022 != 0 {
            return Err(KeyFileError::NotAPlainFile(format!(
                "it is writable by group or others (mode {:o}): anyone who may write it could swap the key",
                info.mode() & 0o777
            )));
        }
        if info.len() > MAX_FILE_SIZE {
            return Err(KeyFileError::NotAPlainFile(format!(
                "it has {} bytes, more than the {MAX_FILE_SIZE} a key file may have",
                info.len()
            )));
        }
        let mut text = String::new();
        (&mut file)
            .take(MAX_FILE_SIZE + 1)
            .read_to_string(&mut text)
            .map_err(|e| KeyFileError::Unreadable(e.to_string()))?;
        KeyFile::from_pem(&text)
    }

    /// Writes the key to `path` atomically (a new file beside it, mode 0600, renamed over it), never
    /// through a symlink and never over anything but a regular file.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = crate::metadata::write_temporary(path, self.to_pem().as_bytes())?;
        crate::metadata::install(&tmp, path)
    }
}

/// The label of a PEM BEGIN line.
fn label_of(line: &str) -> String {
    let label = line.trim_start_matches("-----BEGIN ").trim_end_matches('-');
    label.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(40).collect()
}

/// A TPM2B: a 2-byte big-endian size and exactly that many bytes, at least one.
fn check_tpm2b(bytes: &[u8], what: &str) -> Result<(), KeyFileError> {
    match bytes {
        [hi, lo, rest @ ..] if usize::from(u16::from_be_bytes([*hi, *lo])) == rest.len() && !rest.is_empty() => Ok(()),
        _ => Err(KeyFileError::Malformed(format!("its {what} is not a TPM2B of the size it says"))),
    }
}

/// A TPMKey as decoded, before its type and optional fields are checked.
struct RawKey {
    kind: ObjectIdentifier,
    /// The first optional field this version does not use, if any.
    unsupported: Option<&'static str>,
    key: KeyFile,
}

impl<'a> DecodeValue<'a> for RawKey {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        reader.read_nested(header.length, |reader| {
            let kind = ObjectIdentifier::decode(reader)?;
            let empty_auth = reader.context_specific::<bool>(TagNumber::N0, TagMode::Explicit)?.unwrap_or(false);
            let mut unsupported = None;
            for (number, what) in [
                (TagNumber::N1, "a policy description"),
                (TagNumber::N2, "an imported secret"),
                (TagNumber::N3, "authorisation policies"),
            ] {
                if ContextSpecific::<Any>::decode_explicit(reader, number)?.is_some() {
                    unsupported = unsupported.or(Some(what));
                }
            }
            let parent = u32::decode(reader)?;
            let public = OctetString::decode(reader)?.into_bytes();
            let private = OctetString::decode(reader)?.into_bytes();
            Ok(RawKey { kind, unsupported, key: KeyFile { empty_auth, parent, public, private } })
        })
    }
}

impl Sequence<'_> for RawKey {}

impl EncodeValue for RawKey {
    fn value_len(&self) -> der::Result<Length> {
        self.key.value_len()
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.key.encode_value(writer)
    }
}

impl EncodeValue for KeyFile {
    fn value_len(&self) -> der::Result<Length> {
        let (public, private) = (OctetString::new(self.public.clone())?, OctetString::new(self.private.clone())?);
        LOADABLE_KEY.encoded_len()?
            + self.empty_auth_field().map_or(Ok(Length::ZERO), |f| f.encoded_len())?
            + self.parent.encoded_len()?
            + public.encoded_len()?
            + private.encoded_len()?
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        LOADABLE_KEY.encode(writer)?;
        if let Some(field) = self.empty_auth_field() {
            field.encode(writer)?;
        }
        self.parent.encode(writer)?;
        OctetString::new(self.public.clone())?.encode(writer)?;
        OctetString::new(self.private.clone())?.encode(writer)
    }
}

impl KeyFile {
    /// `emptyAuth [0] TRUE`, written only when true (DER leaves a default-like FALSE out, as the
    /// OpenSSL provider does).
    fn empty_auth_field(&self) -> Option<ContextSpecificRef<'_, bool>> {
        self.empty_auth.then_some(ContextSpecificRef {
            tag_number: TagNumber::N0,
            tag_mode: TagMode::Explicit,
            value: &self.empty_auth,
        })
    }
}

impl der::FixedTag for KeyFile {
    const TAG: der::Tag = der::Tag::Sequence;
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sample() -> KeyFile {
        let mut public = vec![0x00, 0x30];
        public.extend((0..0x30).map(|i| i as u8));
        let mut private = vec![0x00, 0x7E];
        private.extend((0..0x7E).map(|i| (i * 7) as u8));
        KeyFile { empty_auth: true, parent: STANDARD_PARENT, public, private }
    }

    #[test]
    fn round_trip_through_pem_and_der() {
        for key in [sample(), KeyFile { empty_auth: false, parent: 0x8100_0001, ..sample() }] {
            let pem = key.to_pem();
            assert!(pem.starts_with("-----BEGIN TSS2 PRIVATE KEY-----\n"));
            assert!(pem.lines().all(|l| l.len() <= 64));
            assert_eq!(KeyFile::from_pem(&pem).unwrap(), key);
            assert_eq!(KeyFile::from_der(&key.to_der()).unwrap(), key);
        }
        let der = sample().to_der();
        // SEQUENCE (long form) { OID 2.23.133.10.1.3, [0] { BOOLEAN TRUE }, INTEGER 0x40000001, ... },
        // as the OpenSSL tpm2 provider's files begin.
        assert_eq!(&der[..3], &[0x30, 0x81, der.len() as u8 - 3][..]);
        let head = "06066781050a0103a0030101ff020440000001";
        assert_eq!(hex::encode(&der[3..3 + head.len() / 2]), head);
        // A persistent parent with the high bit set is a positive INTEGER (a leading zero byte).
        let der = KeyFile { empty_auth: false, parent: 0x8100_0001, ..sample() }.to_der();
        assert_eq!(hex::encode(&der[11..18]), "02050081000001");
    }

    #[test]
    fn every_cut_is_refused_without_a_panic() {
        let der = sample().to_der();
        for len in 0..der.len() {
            assert!(KeyFile::from_der(&der[..len]).is_err(), "cut at {len}");
        }
        let pem = sample().to_pem();
        for len in 0..pem.len() {
            let cut = &pem[..len];
            if cut.trim_end() != pem.trim_end() {
                assert!(KeyFile::from_pem(cut).is_err(), "PEM cut at {len}");
            }
        }
        let mut longer = der.clone();
        longer.push(0);
        assert!(KeyFile::from_der(&longer).is_err(), "a trailing byte");
    }

    #[test]
    fn other_files_are_named_as_such() {
        let key = sample();
        let mut der = key.to_der();
        der[10] = 0x04; // 2.23.133.10.1.4, id-importablekey
        assert_eq!(
            KeyFile::from_der(&der).unwrap_err().to_string(),
            "it holds a TPM key of type 2.23.133.10.1.4, not a loadable key (2.23.133.10.1.3)"
        );
        let other = key.to_pem().replace("TSS2 PRIVATE KEY", "PRIVATE KEY");
        assert_eq!(
            KeyFile::from_pem(&other).unwrap_err().to_string(),
            "it is not a TSS2 PRIVATE KEY file (its label is \"PRIVATE KEY\")"
        );
        assert!(KeyFile::from_pem("").is_err());
        assert!(KeyFile::from_pem("{\"keys\": {}}").is_err());
        let bad_size = KeyFile { public: vec![0x00, 0x05, 1, 2], ..key.clone() };
        assert!(KeyFile::from_der(&bad_size.to_der()).unwrap_err().to_string().contains("pubkey"));
        let empty = KeyFile { private: vec![0x00, 0x00], ..key };
        assert!(KeyFile::from_der(&empty.to_der()).unwrap_err().to_string().contains("privkey"));
    }

    #[test]
    fn files_that_could_be_swapped_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.tss");
        sample().write(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(KeyFile::read(&path).unwrap(), sample());
        let link = dir.path().join("link.tss");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(KeyFile::read(&link).unwrap_err().to_string(), "it is a symbolic link");
        assert!(sample().write(&link).is_err(), "never written through a symlink");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o646)).unwrap();
        assert!(KeyFile::read(&path).unwrap_err().to_string().contains("writable by group or others"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, vec![b'A'; MAX_FILE_SIZE as usize + 1]).unwrap();
        assert!(KeyFile::read(&path).unwrap_err().to_string().contains("more than"));
        assert!(KeyFile::read(dir.path()).unwrap_err().to_string().contains("not a regular file"));
    }
}
