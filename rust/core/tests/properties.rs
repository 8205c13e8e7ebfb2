//! Property tests (proptest) over every parser this project owns: handles, hex secrets,
//! recovery codes, PCR lists, TCTI strings and the metadata file. None may panic on any input,
//! and what is written must read back. CI runs the default 256 cases per property; a longer
//! run: PROPTEST_CASES=200000 cargo test -p keepassxc-tpm --test properties --release
#![cfg(unix)]

use keepassxc_tpm::metadata::Metadata;
use keepassxc_tpm::{pcr, recovery, yubikey_message, PersistentHandle, Secret, Tcti};
use proptest::prelude::*;

proptest! {
    #[test]
    fn handles_parse_or_refuse(text in "\\PC{0,24}") {
        if let Ok(handle) = text.parse::<PersistentHandle>() {
            prop_assert!((0x8100_0000..=0x817F_FFFF).contains(&handle.value()));
        }
    }

    #[test]
    fn handles_round_trip(value in 0x8100_0000u32..=0x817F_FFFF) {
        let handle = PersistentHandle::new(value).unwrap();
        prop_assert_eq!(handle.to_string().parse::<PersistentHandle>().unwrap(), handle);
        prop_assert_eq!(value.to_string().parse::<PersistentHandle>().unwrap(), handle);
    }

    #[test]
    fn hex_secrets_parse_or_refuse(text in "[0-9a-fA-F :\\n-]{0,80}|\\PC{0,80}") {
        let _ = Secret::from_hex(&text);
        let _ = Secret::parse(&text);
    }

    #[test]
    fn hex_secrets_round_trip(bytes in proptest::collection::vec(any::<u8>(), 1..64)) {
        prop_assert_eq!(Secret::from_hex(&hex::encode(&bytes)).unwrap().bytes().to_vec(), bytes);
    }

    #[test]
    fn recovery_codes_round_trip_and_catch_typos(
        bytes in prop_oneof![proptest::collection::vec(any::<u8>(), 20), proptest::collection::vec(any::<u8>(), 32)],
        position in any::<prop::sample::Index>(),
        replacement in "[0-9A-HJKMNP-TV-Z]",
    ) {
        let code = recovery::encode(&bytes);
        prop_assert_eq!(recovery::decode(&code).unwrap().to_vec(), bytes.clone());
        prop_assert_eq!(Secret::parse(&code).unwrap().bytes().to_vec(), bytes.clone());
        let chars: Vec<char> = code.chars().collect();
        let i = position.index(chars.len());
        let r = replacement.chars().next().unwrap();
        if chars[i] != '-' && chars[i] != r {
            let mut typo = chars.clone();
            typo[i] = r;
            prop_assert!(recovery::decode(&typo.iter().collect::<String>()).is_err());
        }
    }

    #[test]
    fn recovery_decoder_never_panics(text in "\\PC{0,80}") {
        let _ = recovery::decode(&text);
    }

    #[test]
    fn pcr_lists_parse_or_refuse(text in "[0-9,+ ]{0,20}|\\PC{0,20}") {
        if let Ok(pcrs) = pcr::parse_pcrs(&text) {
            prop_assert!(!pcrs.is_empty() && pcrs.iter().all(|&p| p <= pcr::MAX_PCR));
            prop_assert!(pcrs.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn tcti_strings_parse_or_refuse(text in "(device|swtpm|mssim|tabrmd)?:?\\PC{0,40}") {
        if let Ok(tcti) = Tcti::parse(&text) {
            // What parses names the module it was written with, and reads back as it was given.
            prop_assert!(text.trim().starts_with(tcti.module()));
            prop_assert_eq!(tcti.as_str(), text.trim());
        }
    }

    #[test]
    fn metadata_files_of_any_content_are_read_or_refused_and_never_lost(content in proptest::collection::vec(any::<u8>(), 0..256)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(&path, &content).unwrap();
        let meta = Metadata::at(&path);
        let handle = PersistentHandle::new(0x8100_0100).unwrap();
        let other = PersistentHandle::new(0x8100_0101).unwrap();
        let record = keepassxc_tpm::KeyRecord { key_name: Some("000b00".into()), ..Default::default() };
        match meta.get(other) {
            Ok(before) => {
                meta.set(handle, Some(&record)).unwrap();
                prop_assert_eq!(meta.get(handle).unwrap(), Some(record));
                prop_assert_eq!(meta.get(other).unwrap(), before, "another key's record is kept");
            }
            Err(_) => match meta.set(handle, Some(&record)) {
                // An unreadable file is refused, and stays as it was.
                Err(_) => prop_assert_eq!(std::fs::read(&path).unwrap(), content),
                // Only that record was malformed: it is kept, malformed, beside the new one.
                Ok(()) => prop_assert!(meta.get(other).is_err()),
            },
        }
    }

    #[test]
    fn yubikey_messages_are_a_prefix_of_the_challenge_or_refused(challenge in proptest::collection::vec(any::<u8>(), 0..80)) {
        match yubikey_message(&challenge) {
            Ok(message) => {
                prop_assert!(challenge.len() <= 64);
                prop_assert!(challenge.starts_with(&message));
            }
            Err(_) => prop_assert!(challenge.len() > 64),
        }
    }
}
