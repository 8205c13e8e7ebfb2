//! Persistent handles and the KeePassXC address of a key: serial = the handle as an unsigned
//! 32-bit number, slot = 1. YubiKey serials never reach 0x81000000, so the two cannot collide.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

/// Persistent handles of the owner hierarchy (TPM 2.0 Part 2, 7.6).
pub const OWNER_PERSISTENT: RangeInclusive<u32> = keepassxc_tpm_abi::TPM_SERIALS;
/// Serials of keys kept in files ([`crate::keyfile`]): chosen at random when the key is made and
/// kept in its record, so that KeePassXC addresses the key the same way every time.
pub const FILE_KEYS: RangeInclusive<u32> = keepassxc_tpm_abi::FILE_KEY_SERIALS;
/// Where `create`/`import` put a key when no handle is given: clear of the SRK (0x81000001),
/// the other TCG-reserved low handles and the endorsement keys (0x8101xxxx).
pub const PROJECT_RANGE: RangeInclusive<u32> = 0x8100_0100..=0x8100_01FF;
/// The TCG's handle for the storage root key.
pub const SRK_HANDLE: u32 = 0x8100_0001;
/// The only slot a TPM key has.
pub const SLOT: i32 = 1;

/// A handle string, number or KeePassXC address that names no persistent handle of the owner
/// hierarchy (the core's [`Error::BadHandle`](crate::Error::BadHandle) carries it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadHandle {
    /// The handle, serial or address as given.
    pub input: String,
}

impl fmt::Display for BadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}\" is not a persistent TPM handle; give one between 0x81000000 and 0x817FFFFF, e.g. 0x81000100",
            self.input
        )
    }
}

impl std::error::Error for BadHandle {}

/// A key's identity: a persistent handle in the owner range, or the serial of a key kept in a file
/// ([`FILE_KEYS`]; [`PersistentHandle::is_file_key`]), which its record maps to the file's wrapped
/// key. Either is the key's KeePassXC serial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersistentHandle(u32);

impl PersistentHandle {
    /// The handle `value`, if it is in the owner's persistent range or names a key file.
    pub fn new(value: u32) -> Result<Self, BadHandle> {
        if OWNER_PERSISTENT.contains(&value) || FILE_KEYS.contains(&value) {
            Ok(PersistentHandle(value))
        } else {
            Err(BadHandle { input: format!("0x{value:08X}") })
        }
    }

    /// The key a KeePassXC serial number names, if it names a TPM key at all.
    pub fn from_serial(serial: u32) -> Result<Self, BadHandle> {
        Self::new(serial)
    }

    /// The key at KeePassXC's (serial, slot) address.
    pub fn from_address(serial: u32, slot: i32) -> Result<Self, BadHandle> {
        if slot != SLOT {
            return Err(BadHandle { input: format!("{slot}:{serial} (a TPM key only has slot {SLOT})") });
        }
        Self::from_serial(serial)
    }

    /// Whether this names a key kept in a file (loaded from its record when used), not a
    /// persistent object.
    pub fn is_file_key(self) -> bool {
        FILE_KEYS.contains(&self.0)
    }

    /// The handle as a number.
    pub fn value(self) -> u32 {
        self.0
    }

    /// KeePassXC's serial for this key.
    pub fn serial(self) -> u32 {
        self.0
    }
}

impl fmt::Display for PersistentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}", self.0)
    }
}

/// Accepts `0x81000100`, `81000100` (hex, as tpm2-tools prints) and the decimal serial
/// KeePassXC shows (`2164261120`).
impl FromStr for PersistentHandle {
    type Err = BadHandle;

    fn from_str(input: &str) -> Result<Self, BadHandle> {
        let text = input.trim();
        let bad = || BadHandle { input: input.to_owned() };
        let value = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16).map_err(|_| bad())?
        } else if text.len() == 8
            && text.bytes().all(|b| b.is_ascii_hexdigit())
            && (text.starts_with("81") || text.starts_with("82"))
        {
            u32::from_str_radix(text, 16).map_err(|_| bad())?
        } else {
            text.parse::<u32>().map_err(|_| bad())?
        };
        PersistentHandle::new(value).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_bare_hex_and_decimal() {
        assert_eq!("0x81000100".parse::<PersistentHandle>().unwrap().value(), 0x8100_0100);
        assert_eq!("0X817fffff".parse::<PersistentHandle>().unwrap().value(), 0x817F_FFFF);
        assert_eq!("81000100".parse::<PersistentHandle>().unwrap().value(), 0x8100_0100);
        assert_eq!("2164261120".parse::<PersistentHandle>().unwrap().value(), 0x8100_0100);
    }

    #[test]
    fn refuses_what_is_not_an_owner_persistent_handle() {
        for bad in
            ["", "0x", "0x80000000", "0x81800000", "0x1", "-1", "0x81000100 junk", "0x1_0000_0000", "1:0x81000100"]
        {
            assert!(matches!(bad.parse::<PersistentHandle>(), Err(BadHandle { .. })), "{bad:?}");
        }
    }

    #[test]
    fn address_is_serial_and_slot_one() {
        let h = PersistentHandle::from_address(0x8100_0100, 1).unwrap();
        assert_eq!((h.serial(), h.to_string()), (0x8100_0100, "0x81000100".to_owned()));
        assert!(PersistentHandle::from_address(0x8100_0100, 2).is_err());
        assert!(PersistentHandle::from_serial(12_345_678).is_err(), "a YubiKey serial is not a TPM key");
        let file = PersistentHandle::from_address(0x8212_3456, 1).unwrap();
        assert!(file.is_file_key() && !PersistentHandle::new(0x8100_0100).unwrap().is_file_key());
        assert_eq!("82123456".parse::<PersistentHandle>().unwrap(), file);
        assert!("0x83000000".parse::<PersistentHandle>().is_err());
    }

    #[test]
    fn project_range_avoids_reserved_handles() {
        assert!(!PROJECT_RANGE.contains(&SRK_HANDLE));
        assert!(PROJECT_RANGE.clone().all(|h| h >> 16 == 0x8100));
    }
}
