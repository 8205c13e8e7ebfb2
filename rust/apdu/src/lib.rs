//! The YubiKey OTP applet as KeePassXC and yubikit speak it over PC/SC, as pure logic: a command
//! APDU in, a response APDU out. The HMAC itself comes from the caller (the TPM, in the driver).
//!
//! Every input gets a status word; nothing here panics, whatever the bytes (property tests below
//! and the PC/SC driver's `fuzz/` target check that). A crate of its own, with no TPM behind it, so
//! that the fuzz target builds it alone.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use zeroize::Zeroizing;

/// The Yubico OTP applet, which holds the challenge-response slots.
pub const OTP_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x20, 0x01];
/// The YubiKey management applet (yubikit tries it first; this card has none).
pub const MANAGEMENT_AID: [u8; 8] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];

/// The challenge block an HMAC slot takes: KeePassXC pads with PKCS#7, yubikit with a byte that
/// differs from the last one; the slot's mode (the key's record: variable or fixed length) decides
/// what of it is hashed.
pub const HMAC_BLOCK: usize = 64;
/// An HMAC-SHA1 response.
pub const HMAC_RESPONSE: usize = 20;

/// An ISO 7816-4 status word (SW1 SW2), the last two bytes of every response APDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    /// The two bytes that end a response APDU.
    pub fn bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    /// The status word that ends `response`, if it has one.
    pub fn of(response: &[u8]) -> Option<Status> {
        let [.., sw1, sw2] = response else { return None };
        Some(Status(u16::from_be_bytes([*sw1, *sw2])))
    }
}

/// The status words this applet answers.
pub mod sw {
    use super::Status;

    /// Success.
    pub const OK: Status = Status(0x9000);
    /// Wrong length (Lc or the APDU's own structure).
    pub const WRONG_LENGTH: Status = Status(0x6700);
    /// File or application not found: another AID, slot 2 (not configured), or no applet selected.
    pub const NOT_FOUND: Status = Status(0x6A82);
    /// Incorrect P1 or P2.
    pub const WRONG_P1_P2: Status = Status(0x6A86);
    /// Instruction not supported.
    pub const INS_NOT_SUPPORTED: Status = Status(0x6D00);
    /// Class not supported.
    pub const CLA_NOT_SUPPORTED: Status = Status(0x6E00);
    /// No precise diagnosis: the TPM could not answer (it is gone, hung, or refused the key).
    pub const NO_DIAGNOSIS: Status = Status(0x6F00);
}

const INS_SELECT: u8 = 0xA4;
/// The OTP applet's one instruction; P1 says which operation ("slot" in yubikit's words).
const INS_OTP: u8 = 0x01;
/// The OTP applet's status (the block SELECT answers), which KeePassXC 2.7.4 reads its version from.
const INS_STATUS: u8 = 0x03;
const SELECT_BY_NAME: u8 = 0x04;
const OP_SERIAL: u8 = 0x10;
const OP_HMAC_SLOT1: u8 = 0x30;
const OP_HMAC_SLOT2: u8 = 0x38;

/// yubikit's CFGSTATE bit "slot 1 holds a configuration" (no touch bit: this slot never waits).
const SLOT1_VALID: u16 = 0x01;
/// The OTP status's programming sequence: slot 1 was configured once, never changed through here.
const PROGRAM_SEQUENCE: u8 = 1;

/// The OTP applet's version field: the YubiKey protocol level this card speaks, not a product
/// version. 3.0.0 is the level of HMAC-SHA1 challenge-response over CCID (the YubiKey NEO's):
/// yubikit refuses `calculate_hmac_sha1` below 2.2.0 and `is_configured` below 2.1.0, and from
/// 4.0.0 on expects a YubiKey 4's applet. What the card is, the ATR and the reader's name say.
pub const PROTOCOL_VERSION: [u8; 3] = [3, 0, 0];

/// The OTP status block a SELECT answers, as yubikit's `YubiOtpSession` parses it: firmware
/// version (3 bytes), programming sequence, touch level (little-endian: which slots are valid).
pub fn status_block() -> [u8; 6] {
    let [major, minor, patch] = PROTOCOL_VERSION;
    let touch = SLOT1_VALID.to_le_bytes();
    [major, minor, patch, PROGRAM_SEQUENCE, touch[0], touch[1]]
}

/// A command APDU (ISO 7816-3 12.1: cases 1 to 4, short and extended length).
#[derive(Debug, PartialEq, Eq)]
pub struct Command<'a> {
    /// Class byte.
    pub cla: u8,
    /// Instruction.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// The command data (empty when there is no Lc).
    pub data: &'a [u8],
    /// The expected response length, when the APDU has an Le (0 stands for the maximum).
    pub le: Option<usize>,
}

/// Splits `apdu` into its fields, or says 6700 when its length fields do not fit its length.
pub fn parse(apdu: &[u8]) -> Result<Command<'_>, Status> {
    let [cla, ins, p1, p2, body @ ..] = apdu else { return Err(sw::WRONG_LENGTH) };
    let command = |data, le| Command { cla: *cla, ins: *ins, p1: *p1, p2: *p2, data, le };
    let le_of = |bytes: &[u8]| bytes.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
    match body {
        // Case 1.
        [] => Ok(command(&[], None)),
        // Case 2 short.
        [le] => Ok(command(&[], Some(usize::from(*le)))),
        // Extended length: a zero byte, then two bytes of Lc (or of Le alone, case 2E).
        [0, rest @ ..] if rest.len() >= 2 => {
            let (lc, rest) = rest.split_at(2);
            let lc = le_of(lc);
            match rest.len() {
                0 => Ok(command(&[], Some(lc))),
                n if lc != 0 && n == lc => Ok(command(rest, None)),
                n if lc != 0 && n == lc + 2 => {
                    let (data, le) = rest.split_at(lc);
                    Ok(command(data, Some(le_of(le))))
                }
                _ => Err(sw::WRONG_LENGTH),
            }
        }
        // Cases 3 and 4 short (Lc is 1 to 255).
        [lc, rest @ ..] if *lc != 0 => {
            let lc = usize::from(*lc);
            match rest.len() {
                n if n == lc => Ok(command(rest, None)),
                n if n == lc + 1 => Ok(command(&rest[..lc], Some(usize::from(rest[lc])))),
                _ => Err(sw::WRONG_LENGTH),
            }
        }
        _ => Err(sw::WRONG_LENGTH),
    }
}

/// The caller's HMAC of a slot's 64-byte challenge block: the response, or the status word to
/// answer instead (the TPM could not give one).
pub trait SlotHmac: FnOnce(&[u8; HMAC_BLOCK]) -> Result<Zeroizing<Vec<u8>>, Status> {}

impl<F: FnOnce(&[u8; HMAC_BLOCK]) -> Result<Zeroizing<Vec<u8>>, Status>> SlotHmac for F {}

/// One card's OTP applet: which applet is selected, and the serial it reports.
#[derive(Debug)]
pub struct Applet {
    serial: u32,
    selected: bool,
}

impl Applet {
    /// A freshly powered card whose serial is `serial` (nothing selected yet).
    pub fn new(serial: u32) -> Applet {
        Applet { serial, selected: false }
    }

    /// The card is powered down or reset: nothing is selected any more.
    pub fn reset(&mut self) {
        self.selected = false;
    }

    /// Whether the OTP applet is selected.
    pub fn selected(&self) -> bool {
        self.selected
    }

    /// The response APDU (data and status word) to `apdu`. `hmac` is called only for a well-formed
    /// slot-1 challenge, with the 64-byte block as the client sent it.
    pub fn respond(&mut self, apdu: &[u8], hmac: impl SlotHmac) -> Zeroizing<Vec<u8>> {
        match self.answer(apdu, hmac) {
            Ok(mut data) => {
                data.extend_from_slice(&sw::OK.bytes());
                data
            }
            Err(status) => Zeroizing::new(status.bytes().to_vec()),
        }
    }

    fn answer(&mut self, apdu: &[u8], hmac: impl SlotHmac) -> Result<Zeroizing<Vec<u8>>, Status> {
        let command = parse(apdu)?;
        // Only the interindustry class without secure messaging or chaining, as KeePassXC and
        // yubikit send it.
        if command.cla != 0x00 {
            return Err(sw::CLA_NOT_SUPPORTED);
        }
        match command.ins {
            INS_SELECT => self.select(&command),
            // A YubiKey answers INS 01 only inside the OTP applet. 6A82 rather than 6985 (which
            // KeePassXC reads as "touch the key"): there is nothing here to wait for.
            INS_OTP if !self.selected => Err(sw::NOT_FOUND),
            INS_OTP => self.otp(&command, hmac),
            INS_STATUS if !self.selected => Err(sw::NOT_FOUND),
            INS_STATUS if command.p1 != 0 || command.p2 != 0 => Err(sw::WRONG_P1_P2),
            INS_STATUS if !command.data.is_empty() => Err(sw::WRONG_LENGTH),
            INS_STATUS => Ok(Zeroizing::new(status_block().to_vec())),
            _ => Err(sw::INS_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, command: &Command<'_>) -> Result<Zeroizing<Vec<u8>>, Status> {
        if command.p1 != SELECT_BY_NAME {
            return Err(sw::WRONG_P1_P2);
        }
        if command.data.is_empty() {
            return Err(sw::WRONG_LENGTH);
        }
        if command.data != OTP_AID {
            // ISO 7816-4: a failed SELECT leaves the current selection as it was.
            return Err(sw::NOT_FOUND);
        }
        self.selected = true;
        Ok(Zeroizing::new(status_block().to_vec()))
    }

    fn otp(&mut self, command: &Command<'_>, hmac: impl SlotHmac) -> Result<Zeroizing<Vec<u8>>, Status> {
        if command.p2 != 0 {
            return Err(sw::WRONG_P1_P2);
        }
        match command.p1 {
            // KeePassXC sends an Le of 6 here; a YubiKey answers its 4 bytes whatever the Le.
            OP_SERIAL if command.data.is_empty() => Ok(Zeroizing::new(self.serial.to_be_bytes().to_vec())),
            OP_SERIAL => Err(sw::WRONG_LENGTH),
            OP_HMAC_SLOT1 => {
                let block: &[u8; HMAC_BLOCK] = command.data.try_into().map_err(|_| sw::WRONG_LENGTH)?;
                let response = hmac(block)?;
                if response.len() != HMAC_RESPONSE {
                    return Err(sw::NO_DIAGNOSIS);
                }
                Ok(response)
            }
            // Slot 2 holds nothing: KeePassXC and yubikit read 6A82 as "not configured".
            OP_HMAC_SLOT2 => Err(sw::NOT_FOUND),
            // Programming, OTP challenges, NDEF, scan maps and the rest: this card only answers HMACs.
            _ => Err(sw::WRONG_P1_P2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SERIAL: u32 = 0x8100_0100;

    fn select() -> Vec<u8> {
        let mut apdu = vec![0x00, INS_SELECT, 0x04, 0x00, OTP_AID.len() as u8];
        apdu.extend(OTP_AID);
        apdu
    }

    fn hmac_apdu(p1: u8, block: &[u8]) -> Vec<u8> {
        let mut apdu = vec![0x00, INS_OTP, p1, 0x00, block.len() as u8];
        apdu.extend(block);
        apdu
    }

    /// A stand-in HMAC that says what it was given: the first 20 bytes of the block.
    fn echo(block: &[u8; HMAC_BLOCK]) -> Result<Zeroizing<Vec<u8>>, Status> {
        Ok(Zeroizing::new(block[..HMAC_RESPONSE].to_vec()))
    }

    fn never(_: &[u8; HMAC_BLOCK]) -> Result<Zeroizing<Vec<u8>>, Status> {
        panic!("the HMAC must not be asked for")
    }

    fn status(response: &[u8]) -> Status {
        Status::of(response).expect("a status word")
    }

    #[test]
    fn keepassxc_sequence() {
        let mut applet = Applet::new(SERIAL);
        let answer = applet.respond(&select(), never);
        assert_eq!(&answer[..], &[&status_block()[..], &[0x90, 0x00]].concat()[..]);
        assert_eq!(&applet.respond(&[0x00, 0x01, 0x10, 0x00, 0x06], never)[..], &[0x81, 0x00, 0x01, 0x00, 0x90, 0x00]);
        let block: Vec<u8> = (0..64).collect();
        let answer = applet.respond(&hmac_apdu(OP_HMAC_SLOT1, &block), echo);
        assert_eq!(&answer[..20], &block[..20], "the block reaches the HMAC as sent");
        assert_eq!(status(&answer), sw::OK);
        assert_eq!(answer.len(), 22);
        // With an Le byte after the data (case 4), as some clients send it.
        let mut case4 = hmac_apdu(OP_HMAC_SLOT1, &block);
        case4.push(0x00);
        assert_eq!(status(&applet.respond(&case4, echo)), sw::OK);
        assert_eq!(&applet.respond(&hmac_apdu(OP_HMAC_SLOT2, &block), never)[..], &[0x6A, 0x82]);
        let status = [&status_block()[..], &[0x90, 0x00]].concat();
        assert_eq!(&applet.respond(&[0x00, 0x03, 0x00, 0x00, 0x06], never)[..], &status[..], "2.7.4's version query");
    }

    #[test]
    fn status_block_is_what_yubikit_parses() {
        let block = status_block();
        assert_eq!(block[..3], [3, 0, 0], "at least 2.2.0 for yubikit's calculate_hmac_sha1, below 4.0.0");
        assert_eq!(u16::from_le_bytes([block[4], block[5]]) & 0x03, 0x01, "slot 1 configured, slot 2 not");
        assert_eq!(u16::from_le_bytes([block[4], block[5]]) & 0x0C, 0, "no touch");
    }

    #[test]
    fn refusals() {
        let mut applet = Applet::new(SERIAL);
        let block = [0u8; 64];
        assert_eq!(status(&applet.respond(&hmac_apdu(OP_HMAC_SLOT1, &block), never)), sw::NOT_FOUND, "before SELECT");
        assert_eq!(status(&applet.respond(&[0x00, 0x01, 0x10, 0x00], never)), sw::NOT_FOUND, "serial before SELECT");
        let mut management = vec![0x00, INS_SELECT, 0x04, 0x00, 8];
        management.extend(MANAGEMENT_AID);
        assert_eq!(status(&applet.respond(&management, never)), sw::NOT_FOUND);
        assert!(!applet.selected());
        applet.respond(&select(), never);
        assert_eq!(status(&applet.respond(&management, never)), sw::NOT_FOUND);
        assert!(applet.selected(), "a failed SELECT keeps the OTP applet selected");
        assert_eq!(status(&applet.respond(&[0x80, 0x01, 0x10, 0x00], never)), sw::CLA_NOT_SUPPORTED);
        assert_eq!(status(&applet.respond(&[0x00, 0x55, 0x00, 0x00], never)), sw::INS_NOT_SUPPORTED);
        assert_eq!(status(&applet.respond(&[0x00, 0x01, 0x01, 0x00, 1, 0], never)), sw::WRONG_P1_P2, "no programming");
        assert_eq!(status(&applet.respond(&[0x00, 0x01, 0x10, 0x01], never)), sw::WRONG_P1_P2);
        assert_eq!(status(&applet.respond(&[0x00, 0x01, 0x10, 0x00, 1, 0], never)), sw::WRONG_LENGTH);
        for len in [0usize, 1, 20, 63] {
            let apdu = if len == 0 { vec![0x00, 0x01, 0x30, 0x00] } else { hmac_apdu(OP_HMAC_SLOT1, &vec![1; len]) };
            assert_eq!(status(&applet.respond(&apdu, never)), sw::WRONG_LENGTH, "a {len}-byte challenge");
        }
        assert_eq!(status(&applet.respond(&[0x00, 0xA4, 0x00, 0x00, 1, 0x3F], never)), sw::WRONG_P1_P2);
        assert_eq!(status(&applet.respond(&[0x00, 0x01, 0x30], never)), sw::WRONG_LENGTH);
        assert_eq!(
            status(&applet.respond(&hmac_apdu(OP_HMAC_SLOT1, &block), |_| Err(sw::NO_DIAGNOSIS))),
            Status(0x6F00)
        );
        let short = |_: &[u8; 64]| Ok(Zeroizing::new(vec![0u8; 32]));
        assert_eq!(
            status(&applet.respond(&hmac_apdu(OP_HMAC_SLOT1, &block), short)),
            Status(0x6F00),
            "only 20-byte answers"
        );
        applet.reset();
        assert!(!applet.selected(), "a reset deselects");
    }

    #[test]
    fn parse_cases() {
        let c = |apdu: &[u8]| parse(apdu).map(|c| (c.data.to_vec(), c.le));
        assert_eq!(c(&[0, 1, 2, 3]), Ok((vec![], None)));
        assert_eq!(c(&[0, 1, 2, 3, 0]), Ok((vec![], Some(0))));
        assert_eq!(c(&[0, 1, 2, 3, 2, 9, 8]), Ok((vec![9, 8], None)));
        assert_eq!(c(&[0, 1, 2, 3, 2, 9, 8, 4]), Ok((vec![9, 8], Some(4))));
        assert_eq!(c(&[0, 1, 2, 3, 0, 1, 0]), Ok((vec![], Some(256))));
        assert_eq!(c(&[0, 1, 2, 3, 0, 0, 2, 9, 8]), Ok((vec![9, 8], None)));
        assert_eq!(c(&[0, 1, 2, 3, 0, 0, 2, 9, 8, 0, 0]), Ok((vec![9, 8], Some(0))));
        for bad in [
            &[0u8, 1, 2][..],
            &[0, 1, 2, 3, 3, 9],
            &[0, 1, 2, 3, 0, 0],
            &[0, 1, 2, 3, 0, 0, 0, 5],
            &[0, 1, 2, 3, 1, 5, 6, 7],
        ] {
            assert_eq!(parse(bad), Err(sw::WRONG_LENGTH), "{bad:02x?}");
        }
    }

    #[test]
    fn extended_length_hmac() {
        let mut applet = Applet::new(SERIAL);
        applet.respond(&select(), never);
        let mut apdu = vec![0x00, INS_OTP, OP_HMAC_SLOT1, 0x00, 0x00, 0x00, 64];
        apdu.extend([7u8; 64]);
        assert_eq!(status(&applet.respond(&apdu, echo)), sw::OK);
        apdu.extend([0x00, 0x00]);
        assert_eq!(status(&applet.respond(&apdu, echo)), sw::OK);
    }

    #[test]
    fn every_length_up_to_300_gets_a_status_word() {
        for selected in [false, true] {
            for len in 0..=300usize {
                for fill in [0x00u8, 0x01, 0x30, 0x40, 0xFF] {
                    let mut applet = Applet::new(SERIAL);
                    if selected {
                        applet.respond(&select(), never);
                    }
                    let mut apdu = vec![fill; len];
                    // The OTP applet's own header, so that its paths are reached too.
                    apdu.iter_mut().zip([0x00, INS_OTP, OP_HMAC_SLOT1, 0x00]).for_each(|(b, h)| *b = h);
                    let answer = applet.respond(&apdu, echo);
                    assert!(answer.len() >= 2, "len {len}");
                    let sw = status(&answer);
                    assert!(sw == sw::OK || answer.len() == 2, "an error has no data: len {len}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_apdu_gets_a_status_word(apdu in proptest::collection::vec(any::<u8>(), 0..300), select_first: bool) {
            let mut applet = Applet::new(SERIAL);
            if select_first {
                applet.respond(&select(), never);
            }
            let answer = applet.respond(&apdu, echo);
            prop_assert!(answer.len() >= 2);
            let Status(sw) = status(&answer);
            prop_assert!(matches!(sw, 0x9000 | 0x6700 | 0x6A82 | 0x6A86 | 0x6D00 | 0x6E00 | 0x6F00), "{:04X}", sw);
            prop_assert!(sw == 0x9000 || answer.len() == 2);
        }

        #[test]
        fn otp_headers_with_any_body(p1: u8, p2: u8, body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut applet = Applet::new(SERIAL);
            applet.respond(&select(), never);
            let mut apdu = vec![0x00, INS_OTP, p1, p2];
            apdu.extend(body);
            let answer = applet.respond(&apdu, echo);
            prop_assert!(answer.len() >= 2);
            if status(&answer) == sw::OK {
                prop_assert!(p2 == 0 && (p1 == OP_SERIAL || p1 == OP_HMAC_SLOT1));
            }
        }

        #[test]
        fn well_formed_challenges_reach_the_hmac(block in proptest::collection::vec(any::<u8>(), 64), extended: bool) {
            let mut applet = Applet::new(SERIAL);
            applet.respond(&select(), never);
            let apdu = if extended {
                [&[0x00, INS_OTP, OP_HMAC_SLOT1, 0x00, 0x00, 0x00, 64][..], &block].concat()
            } else {
                hmac_apdu(OP_HMAC_SLOT1, &block)
            };
            let answer = applet.respond(&apdu, echo);
            prop_assert_eq!(&answer[..20], &block[..20]);
            prop_assert_eq!(status(&answer), sw::OK);
        }
    }
}
