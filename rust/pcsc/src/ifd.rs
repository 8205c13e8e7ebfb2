//! The entry points pcscd calls (pcsc-lite's ifdhandler.h, IFD handler version 3), as thin as
//! possible over [`Reader`]: pointers checked and turned into slices here, everything else in
//! safe code. Each entry catches panics and answers IFD_COMMUNICATION_ERROR instead, since this
//! code runs inside pcscd, as root.
//!
//! Slots: one reader (one reader.conf.d entry) has one slot per served key. pcscd numbers a
//! reader's slots in the low 16 bits of `Lun` and tells readers of the same driver apart by the
//! high 16 bits; it asks for TAG_IFD_SLOTS_NUMBER once, when it loads the reader, and calls
//! IFDHCreateChannelByName for every slot. One reader per key would need one reader.conf.d entry
//! per key, which root would have to write and pcscd re-read; slots keep the entry fixed.
#![allow(non_snake_case)]

use std::collections::BTreeMap;
use std::ffi::{c_char, c_long, c_uchar, c_ulong, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use crate::config;
use crate::log::log;
use crate::reader::Reader;

/// ifdhandler.h's DWORD (`unsigned long` on Linux).
pub type Dword = c_ulong;
/// ifdhandler.h's RESPONSECODE (`long`).
pub type ResponseCode = c_long;

/// ifdhandler.h's SCARD_IO_HEADER.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ScardIoHeader {
    /// The protocol (SCARD_PROTOCOL_T0 / T1).
    pub protocol: Dword,
    /// Unused.
    pub length: Dword,
}

/// Success.
pub const IFD_SUCCESS: ResponseCode = 0;
/// The tag is not known.
pub const IFD_ERROR_TAG: ResponseCode = 600;
/// Power up failed (no card).
pub const IFD_ERROR_POWER_ACTION: ResponseCode = 608;
/// Not supported.
pub const IFD_ERROR_NOT_SUPPORTED: ResponseCode = 606;
/// The protocol is not supported.
pub const IFD_PROTOCOL_NOT_SUPPORTED: ResponseCode = 607;
/// Any other failure.
pub const IFD_COMMUNICATION_ERROR: ResponseCode = 612;
/// The request is not supported.
pub const IFD_NOT_SUPPORTED: ResponseCode = 614;
/// A card is present.
pub const IFD_ICC_PRESENT: ResponseCode = 615;
/// No card.
pub const IFD_ICC_NOT_PRESENT: ResponseCode = 616;
/// The buffer given is too small.
pub const IFD_ERROR_INSUFFICIENT_BUFFER: ResponseCode = 618;

/// IFDHPowerICC's actions: power the card up.
pub const IFD_POWER_UP: Dword = 500;
/// Power the card down.
pub const IFD_POWER_DOWN: Dword = 501;
/// A warm reset.
pub const IFD_RESET: Dword = 502;

/// IFDHGetCapabilities' tags: the card's ATR.
pub const TAG_IFD_ATR: Dword = 0x0303;
/// SCARD_ATTR_ATR_STRING, the same as TAG_IFD_ATR.
pub const SCARD_ATTR_ATR_STRING: Dword = 0x0009_0303;
/// Whether calls for different slots may run at once.
pub const TAG_IFD_SLOT_THREAD_SAFE: Dword = 0x0FAC;
/// Whether calls for different readers may run at once.
pub const TAG_IFD_THREAD_SAFE: Dword = 0x0FAD;
/// The reader's number of slots.
pub const TAG_IFD_SLOTS_NUMBER: Dword = 0x0FAE;
/// How many readers (reader.conf.d entries) this driver may serve.
pub const TAG_IFD_SIMULTANEOUS_ACCESS: Dword = 0x0FAF;

const SCARD_PROTOCOL_T0: Dword = 1;
const SCARD_PROTOCOL_T1: Dword = 2;

/// Readers (one per reader.conf.d entry using this driver) this driver serves at once.
const MAX_READERS: u8 = 4;

/// The readers, by the high 16 bits of `Lun`. pcscd serialises every call into this driver
/// (TAG_IFD_THREAD_SAFE and TAG_IFD_SLOT_THREAD_SAFE are 0), so this lock is never contended there.
///
/// It is held across a TPM call, up to the backend's timeout (8 s), and so blocks this driver's
/// other slots for that long. That is accepted: pcscd itself holds its lock for this driver
/// around each call into it, so a second lock of our own would gain nothing; other drivers'
/// readers (a YubiKey's CCID reader) have their own lock in pcscd and are not held up; the
/// backend fails at once for a while after a timeout (its cool-down), and caps the threads a TPM
/// that hangs for good can hold (the core's `TpmWorker`), so one stuck TPM costs one timeout
/// per cool-down, never a growing pile of threads and connections.
static READERS: Mutex<BTreeMap<Dword, OpenReader>> = Mutex::new(BTreeMap::new());

struct OpenReader {
    reader: Reader,
    open_slots: usize,
}

fn readers() -> MutexGuard<'static, BTreeMap<Dword, OpenReader>> {
    // A panic while the lock was held left a reader as it was; the next call may still use it.
    READERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn split(lun: Dword) -> (Dword, usize) {
    (lun >> 16, (lun & 0xFFFF) as usize)
}

/// Runs `f` for the reader of `lun`, IFD_COMMUNICATION_ERROR when there is none.
fn with_reader(lun: Dword, f: impl FnOnce(&mut Reader, usize) -> ResponseCode) -> ResponseCode {
    let (reader, slot) = split(lun);
    match readers().get_mut(&reader) {
        Some(open) => f(&mut open.reader, slot),
        None => IFD_COMMUNICATION_ERROR,
    }
}

/// `f`, with a panic turned into IFD_COMMUNICATION_ERROR (and one log line).
fn guard(entry: &str, f: impl FnOnce() -> ResponseCode) -> ResponseCode {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        log!("{entry}: internal error (a panic was caught)");
        IFD_COMMUNICATION_ERROR
    })
}

fn open_channel(lun: Dword, path: &Path) -> ResponseCode {
    let (index, _) = split(lun);
    let mut readers = readers();
    // pcscd opens every slot of a reader; the first one opens the reader.
    let open = readers.entry(index).or_insert_with(|| OpenReader { reader: Reader::open(path), open_slots: 0 });
    open.open_slots += 1;
    IFD_SUCCESS
}

/// Opens the reader whose config file `device_name` names (the reader.conf.d entry's DEVICENAME).
///
/// # Safety
/// `device_name` is NULL or a NUL-terminated string, as pcscd passes it.
#[no_mangle]
pub unsafe extern "C" fn IFDHCreateChannelByName(lun: Dword, device_name: *const c_char) -> ResponseCode {
    guard("IFDHCreateChannelByName", || {
        let name = if device_name.is_null() {
            None
        } else {
            // SAFETY: not NULL, and NUL-terminated by the caller's contract; only read here.
            Some(unsafe { CStr::from_ptr(device_name) }.to_string_lossy().into_owned())
        };
        open_channel(lun, &config::path_from_device_name(name.as_deref()))
    })
}

/// Opens the reader with the default config file (an entry without DEVICENAME).
#[no_mangle]
pub extern "C" fn IFDHCreateChannel(lun: Dword, _channel: Dword) -> ResponseCode {
    guard("IFDHCreateChannel", || open_channel(lun, Path::new(config::DEFAULT_PATH)))
}

/// Closes one slot; the reader (and its TPM connection) goes with its last slot.
#[no_mangle]
pub extern "C" fn IFDHCloseChannel(lun: Dword) -> ResponseCode {
    guard("IFDHCloseChannel", || {
        let (index, _) = split(lun);
        let mut readers = readers();
        if let Some(open) = readers.get_mut(&index) {
            open.open_slots = open.open_slots.saturating_sub(1);
            if open.open_slots == 0 {
                readers.remove(&index);
            }
        }
        IFD_SUCCESS
    })
}

/// pcsc-lite's contract on the lengths an entry point returns (ifdhandler.h: "This should be ZERO
/// on all errors"): `*length` is set to 0 unless `result` is IFD_SUCCESS.
///
/// # Safety
/// `length` is NULL or points to a DWORD, as pcscd passes it.
unsafe fn zero_on_error(result: ResponseCode, length: *mut Dword) -> ResponseCode {
    if result != IFD_SUCCESS && !length.is_null() {
        // SAFETY: not NULL; points to a DWORD by the caller's contract.
        unsafe { *length = 0 };
    }
    result
}

/// Copies `value` to pcscd's buffer of `*length` bytes and sets `*length`.
///
/// # Safety
/// `length` points to the buffer's size and `buffer` to that many writable bytes (or either is NULL).
unsafe fn give(value: &[u8], length: *mut Dword, buffer: *mut c_uchar) -> ResponseCode {
    if length.is_null() || buffer.is_null() {
        return IFD_COMMUNICATION_ERROR;
    }
    // SAFETY: `length` is not NULL and points to a DWORD by the caller's contract.
    let capacity = unsafe { *length } as usize;
    if capacity < value.len() {
        return IFD_ERROR_INSUFFICIENT_BUFFER;
    }
    // SAFETY: `buffer` has `capacity` >= value.len() writable bytes, and does not overlap our value.
    unsafe {
        std::ptr::copy_nonoverlapping(value.as_ptr(), buffer, value.len());
        *length = value.len() as Dword;
    }
    IFD_SUCCESS
}

/// Answers pcscd's questions about the reader and the card.
///
/// # Safety
/// `length` points to the size of `value`'s buffer, as pcscd passes them.
#[no_mangle]
pub unsafe extern "C" fn IFDHGetCapabilities(
    lun: Dword,
    tag: Dword,
    length: *mut Dword,
    value: *mut c_uchar,
) -> ResponseCode {
    let result = guard("IFDHGetCapabilities", || {
        let byte = |b: u8| {
            // SAFETY: pcscd's pointers, passed on under the same contract.
            unsafe { give(&[b], length, value) }
        };
        match tag {
            TAG_IFD_ATR | SCARD_ATTR_ATR_STRING => with_reader(lun, |reader, slot| match reader.atr(slot) {
                // SAFETY: as above.
                Some(atr) => unsafe { give(atr, length, value) },
                None => IFD_ICC_NOT_PRESENT,
            }),
            TAG_IFD_SLOTS_NUMBER => with_reader(lun, |reader, _| byte(reader.slot_count() as u8)),
            TAG_IFD_SIMULTANEOUS_ACCESS => byte(MAX_READERS),
            TAG_IFD_THREAD_SAFE | TAG_IFD_SLOT_THREAD_SAFE => byte(0),
            _ => IFD_ERROR_TAG,
        }
    });
    // SAFETY: pcscd's pointer, passed on under the same contract.
    unsafe { zero_on_error(result, length) }
}

/// Nothing can be set.
#[no_mangle]
pub extern "C" fn IFDHSetCapabilities(_lun: Dword, _tag: Dword, _length: Dword, _value: *mut c_uchar) -> ResponseCode {
    IFD_NOT_SUPPORTED
}

/// T=1 (the ATR's) or T=0; the card takes whole APDUs either way.
#[no_mangle]
pub extern "C" fn IFDHSetProtocolParameters(
    _lun: Dword,
    protocol: Dword,
    _flags: c_uchar,
    _pts1: c_uchar,
    _pts2: c_uchar,
    _pts3: c_uchar,
) -> ResponseCode {
    match protocol {
        SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1 => IFD_SUCCESS,
        _ => IFD_PROTOCOL_NOT_SUPPORTED,
    }
}

/// Powers the card up (its ATR into `atr`), resets it, or powers it down.
///
/// # Safety
/// `atr` has room for `*atr_length` bytes (MAX_ATR_SIZE), as pcscd passes them.
#[no_mangle]
pub unsafe extern "C" fn IFDHPowerICC(
    lun: Dword,
    action: Dword,
    atr: *mut c_uchar,
    atr_length: *mut Dword,
) -> ResponseCode {
    let result = guard("IFDHPowerICC", || {
        with_reader(lun, |reader, slot| match action {
            IFD_POWER_UP | IFD_RESET => match reader.power_up(slot) {
                // SAFETY: pcscd's pointers, passed on under the same contract.
                Some(answer) => unsafe { give(answer, atr_length, atr) },
                None => IFD_ERROR_POWER_ACTION,
            },
            IFD_POWER_DOWN => {
                reader.power_down(slot);
                if !atr_length.is_null() {
                    // SAFETY: not NULL; points to a DWORD by the caller's contract.
                    unsafe { *atr_length = 0 };
                }
                IFD_SUCCESS
            }
            _ => IFD_NOT_SUPPORTED,
        })
    });
    // SAFETY: pcscd's pointer, passed on under the same contract.
    unsafe { zero_on_error(result, atr_length) }
}

/// Sends one APDU to the card and copies its answer into `rx`.
///
/// # Safety
/// `tx` holds `tx_length` readable bytes; `rx` has room for `*rx_length` bytes, as pcscd passes them.
#[no_mangle]
pub unsafe extern "C" fn IFDHTransmitToICC(
    lun: Dword,
    _send_pci: ScardIoHeader,
    tx: *const c_uchar,
    tx_length: Dword,
    rx: *mut c_uchar,
    rx_length: *mut Dword,
    _recv_pci: *mut ScardIoHeader,
) -> ResponseCode {
    let result = guard("IFDHTransmitToICC", || {
        let apdu: &[u8] = match (tx.is_null(), tx_length) {
            (_, 0) => &[],
            (true, _) => return IFD_COMMUNICATION_ERROR,
            // SAFETY: not NULL, and `tx_length` readable bytes by the caller's contract; only read
            // while this call runs.
            (false, n) => unsafe { std::slice::from_raw_parts(tx, n as usize) },
        };
        with_reader(lun, |reader, slot| match reader.transmit(slot, apdu) {
            // SAFETY: pcscd's pointers, passed on under the same contract.
            Some(answer) => unsafe { give(&answer, rx_length, rx) },
            None => IFD_ICC_NOT_PRESENT,
        })
    });
    // SAFETY: pcscd's pointer, passed on under the same contract.
    unsafe { zero_on_error(result, rx_length) }
}

/// No reader control codes (no PIN pad, no features).
///
/// # Safety
/// `bytes_returned` is NULL or points to a DWORD, as pcscd passes it.
#[no_mangle]
pub unsafe extern "C" fn IFDHControl(
    _lun: Dword,
    _control_code: Dword,
    _tx: *const c_uchar,
    _tx_length: Dword,
    _rx: *mut c_uchar,
    _rx_length: Dword,
    bytes_returned: *mut Dword,
) -> ResponseCode {
    if !bytes_returned.is_null() {
        // SAFETY: not NULL; points to a DWORD by the caller's contract.
        unsafe { *bytes_returned = 0 };
    }
    IFD_ERROR_NOT_SUPPORTED
}

/// Whether the slot holds a card: a served key (the config file is read again when it changed).
#[no_mangle]
pub extern "C" fn IFDHICCPresence(lun: Dword) -> ResponseCode {
    guard("IFDHICCPresence", || {
        with_reader(lun, |reader, slot| if reader.present(slot) { IFD_ICC_PRESENT } else { IFD_ICC_NOT_PRESENT })
    })
}
