//! One reader as pcscd sees it, in safe Rust: its slots (one card per served key), the config
//! file re-read whenever it changes, and each card's applet answering through the TPM.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::apdu::{sw, Applet};
use crate::backend::{Backend, NoResponse};
use crate::config::{self, Card, Cards, Stamp};
use crate::log::log;

pub use keepassxc_tpm::cards::MAX_SLOTS;

/// The card's ATR: T=1 (TD1 = 80, TD2 = 01, the form PC/SC readers give contactless cards, a
/// YubiKey's included) with "KeePassXC-TPM" as its 13 historical bytes, and the check byte.
pub const ATR: [u8; 18] = atr(*b"KeePassXC-TPM");

const fn atr(historical: [u8; 13]) -> [u8; 18] {
    let mut atr = [0u8; 18];
    atr[0] = 0x3B;
    atr[1] = 0x80 | 13;
    atr[2] = 0x80;
    atr[3] = 0x01;
    let mut i = 0;
    while i < 13 {
        atr[4 + i] = historical[i];
        i += 1;
    }
    // TCK: the XOR of every byte from T0 on (needed when T=1 is offered).
    let mut tck = 0;
    let mut j = 1;
    while j < 17 {
        tck ^= atr[j];
        j += 1;
    }
    atr[17] = tck;
    atr
}

/// What a slot holds, as pcscd is to see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No key is served in this slot.
    Empty,
    /// The slot's key is served.
    Card,
    /// The key changed or went: "no card" until the next presence poll has reported it once, so
    /// that pcscd and its clients see a new card (or none). Only [`Reader::present`] ends it.
    Removing,
    /// The TPM refused the key (see [`NoResponse::Refused`]): no card until the file changes.
    Refused,
}

struct Slot {
    /// The key this slot serves (once a removal has been reported).
    key: Option<Card>,
    applet: Applet,
    state: State,
}

impl Slot {
    fn empty() -> Slot {
        Slot { key: None, applet: Applet::new(0), state: State::Empty }
    }

    /// The state the slot's key gives it once nothing is pending.
    fn settled(&self) -> State {
        if self.key.is_some() {
            State::Card
        } else {
            State::Empty
        }
    }
}

/// A reader whose slots hold the keys the config file serves.
pub struct Reader {
    path: PathBuf,
    stamp: Option<Stamp>,
    /// Whether the file has been read at all (a missing file is read as "no keys").
    loaded: bool,
    slots: Vec<Slot>,
    backend: Backend,
}

impl Reader {
    /// The reader for the config file at `path`: slots up to the highest one the file gives a key
    /// now (at least one, at most [`MAX_SLOTS`]); a file that cannot be used serves no card, and is
    /// read again when it changes.
    pub fn open(path: &Path) -> Reader {
        let (_, config) = config::load(path);
        let wanted = config.as_ref().ok().and_then(|c| c.served.iter().map(|k| k.slot + 1).max()).unwrap_or(0);
        let count = wanted.clamp(1, MAX_SLOTS);
        let mut reader = Reader {
            path: path.to_owned(),
            stamp: None,
            loaded: false,
            slots: (0..count).map(|_| Slot::empty()).collect(),
            backend: Backend::new(None, path.to_owned()),
        };
        reader.refresh();
        reader
    }

    /// The number of slots, fixed when pcscd loads the reader.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The KeePassXC serial of the card in `slot`, if there is one.
    pub fn serial(&mut self, slot: usize) -> Option<u32> {
        self.has_card(slot).then(|| self.slots[slot].key.as_ref().map(|k| k.handle.serial())).flatten()
    }

    /// Reads the file again when it changed (owner, mode, content or the file itself).
    pub fn refresh(&mut self) {
        let stamp = Stamp::of(&self.path);
        if self.loaded && stamp == self.stamp {
            return;
        }
        let (stamp, config) = config::load(&self.path);
        self.stamp = stamp;
        self.loaded = true;
        let config = config.unwrap_or_else(|why| {
            log!("{}: serving no card: {why}{}", self.path.display(), remedy_for_pcscd(&self.path));
            Cards::default()
        });
        self.apply(config);
    }

    fn apply(&mut self, config: Cards) {
        for (handle, why) in &config.refused {
            log!("{}: key {handle} not served: {why}", self.path.display());
        }
        for extra in config.served.iter().filter(|k| k.slot >= self.slots.len()) {
            log!(
                "{}: key {} not served: its slot {} is beyond this reader's {} slot(s), counted when pcscd loaded \
                 it; restart pcscd",
                self.path.display(),
                extra.handle,
                extra.slot,
                self.slots.len()
            );
        }
        if self.backend.tcti() != config.tcti.as_deref() {
            self.backend = Backend::new(config.tcti.clone(), self.path.clone());
        }
        self.backend.recheck();
        let mut served = config.served;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let key = served.iter().position(|k| k.slot == index).map(|i| served.swap_remove(i));
            let changed = slot.key != key;
            // A removal still to be reported stays pending; a new file clears a refusal.
            slot.state = match slot.state {
                State::Removing => State::Removing,
                _ if changed && slot.key.is_some() => State::Removing,
                _ if key.is_some() => State::Card,
                _ => State::Empty,
            };
            if changed {
                slot.applet = Applet::new(key.as_ref().map_or(0, |k| k.handle.serial()));
                slot.key = key;
            }
        }
    }

    /// Whether `slot` holds a card now, as pcscd's presence poll (IFDHICCPresence) asks: the file is
    /// checked for changes first, and a pending removal is reported here, once. No other query ends
    /// a removal, so a transmit cannot swallow the "card removed" that pcscd must see.
    pub fn present(&mut self, slot: usize) -> bool {
        self.refresh();
        let Some(slot) = self.slots.get_mut(slot) else { return false };
        if slot.state == State::Removing {
            slot.state = slot.settled();
            return false;
        }
        slot.state == State::Card
    }

    /// Whether `slot` holds a card for a query other than the presence poll (the file is checked
    /// for changes first; nothing pending is ended).
    fn has_card(&mut self, slot: usize) -> bool {
        self.refresh();
        self.slots.get(slot).is_some_and(|slot| slot.state == State::Card)
    }

    /// The ATR of the card in `slot`, or `None` without a card.
    pub fn atr(&mut self, slot: usize) -> Option<&'static [u8]> {
        self.has_card(slot).then_some(&ATR[..])
    }

    /// Powers the card in `slot` up (or resets it): its ATR, or `None` without a card.
    pub fn power_up(&mut self, slot: usize) -> Option<&'static [u8]> {
        if !self.has_card(slot) {
            return None;
        }
        self.slots[slot].applet.reset();
        Some(&ATR)
    }

    /// Powers the card in `slot` down.
    pub fn power_down(&mut self, slot: usize) {
        if let Some(slot) = self.slots.get_mut(slot) {
            slot.applet.reset();
        }
    }

    /// The card's answer to `apdu`, or `None` without a card in `slot`.
    pub fn transmit(&mut self, slot: usize, apdu: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if !self.has_card(slot) {
            return None;
        }
        let path = &self.path;
        let backend = &mut self.backend;
        let slot = &mut self.slots[slot];
        let key = slot.key.as_ref()?;
        let handle = key.handle;
        let mut refused = false;
        let answer = slot.applet.respond(apdu, |block| {
            backend.hmac(handle, block).map_err(|failure| {
                match failure {
                    NoResponse::Unavailable(why) => log!("{}: key {handle}: no response: {why}", path.display()),
                    NoResponse::Refused(why) => {
                        log!("{}: key {handle} no longer served until the file changes: {why}", path.display());
                        refused = true;
                    }
                }
                sw::NO_DIAGNOSIS
            })
        });
        if refused {
            slot.state = State::Refused;
        }
        Some(answer)
    }
}

/// What to do when pcscd's own user may not read the file: its unit decides who pcscd is (root
/// without capabilities on Debian 13, the user pcscd on sid), so the file must be readable by all.
fn remedy_for_pcscd(path: &Path) -> String {
    match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => format!(
            "; pcscd runs as its unit's User= (root without capabilities, or pcscd), which must be able to read \
             it: sudo chown root:root {0} && sudo chmod 644 {0}",
            path.display()
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atr_is_t1_with_our_name_and_a_valid_check_byte() {
        assert_eq!(&ATR[..4], &[0x3B, 0x8D, 0x80, 0x01]);
        assert_eq!(&ATR[4..17], b"KeePassXC-TPM");
        assert_eq!(ATR[1..].iter().fold(0, |x, b| x ^ b), 0, "TCK makes T0..TCK XOR to zero");
        assert!(ATR.len() <= 33, "MAX_ATR_SIZE");
    }

    #[test]
    fn a_reader_without_a_file_has_one_empty_slot() {
        let dir = tempfile::tempdir().unwrap();
        let mut reader = Reader::open(&dir.path().join("missing.json"));
        assert_eq!(reader.slot_count(), 1);
        assert!(!reader.present(0));
        assert!(!reader.present(7), "a slot it does not have");
        assert!(reader.power_up(0).is_none());
        assert!(reader.transmit(0, &[0, 0xA4, 4, 0]).is_none());
    }
}
