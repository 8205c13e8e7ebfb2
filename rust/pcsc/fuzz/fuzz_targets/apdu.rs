//! Fuzzes the OTP applet with any bytes as a command APDU, before and after SELECT: every input
//! gets a status word, an error carries no data, and nothing panics.
#![no_main]

use keepassxc_tpm_apdu as apdu;

use apdu::{Applet, Status, OTP_AID};
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let _ = apdu::parse(data);
    let (select_first, apdu) = match data.split_first() {
        Some((flag, rest)) => (flag & 1 == 1, rest),
        None => (false, data),
    };
    let mut applet = Applet::new(0x8100_0100);
    if select_first {
        let select = [&[0x00, 0xA4, 0x04, 0x00, 0x07][..], &OTP_AID].concat();
        applet.respond(&select, |_| unreachable!("SELECT asks for no HMAC"));
    }
    let answer = applet.respond(apdu, |block| Ok(Zeroizing::new(block[..apdu::HMAC_RESPONSE].to_vec())));
    assert!(answer.len() >= 2, "no status word");
    assert!(Status::of(&answer) == Some(apdu::sw::OK) || answer.len() == 2, "an error with data");
});
