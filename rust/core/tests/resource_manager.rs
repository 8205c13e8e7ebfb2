//! Behind a resource manager (tpm2-abrmd here, as the kernel's /dev/tpmrm0 would be) a session is
//! kept from one challenge to the next, so a warm challenge is one command; and a process killed
//! while it holds one leaves nothing loaded, because the resource manager flushes what a closed
//! connection had. (One test function: it sets the process's D-Bus address.)
#![cfg(unix)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use keepassxc_tpm::{Algorithm, Metadata, Tpm, TpmOptions};
use swtpm_fixture::commands::by_client;
use swtpm_fixture::{tpm2, Abrmd, CommandLog, Swtpm};

const CHILD: &str = "KEEPASSXC_TPM_TEST_CHILD";

fn through_abrmd(abrmd: &Abrmd, metadata: &std::path::Path) -> Tpm {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Tpm::open(&TpmOptions::tcti(Some(abrmd.tcti())).with_metadata(Metadata::at(metadata))) {
            Ok(tpm) => return tpm,
            Err(e) if Instant::now() > deadline => panic!("tpm2-abrmd did not come up: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn sessions_in(swtpm: &Swtpm) -> String {
    let loaded = tpm2(&swtpm.tcti(), &["tpm2_getcap", "handles-loaded-session"]);
    let saved = tpm2(&swtpm.tcti(), &["tpm2_getcap", "handles-saved-session"]);
    format!("{loaded}{saved}").trim().to_owned()
}

#[test]
fn behind_a_resource_manager_sessions_are_kept_and_freed_with_the_connection() {
    if let Ok(metadata) = std::env::var(CHILD) {
        // The child: challenge twice, say so, and wait to be killed.
        let handle = handle(0x8100_0100);
        let mut tpm =
            Tpm::open(&TpmOptions::tcti(Some("tabrmd:bus_type=session")).with_metadata(Metadata::at(metadata)))
                .unwrap();
        tpm.challenge(handle, &[1u8; 32]).unwrap();
        tpm.challenge(handle, &[2u8; 32]).unwrap();
        println!("ready");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let swtpm = Swtpm::start();
    let metadata = swtpm.dir().join("keys.json");
    let key = {
        let mut tpm = open(&swtpm);
        import(&mut tpm, YUBIKEY_SECRET, None, Algorithm::Sha1)
    };
    let proxy = CommandLog::start(swtpm.port());
    let abrmd = Abrmd::start_at(&swtpm, &proxy.tcti());
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", abrmd.bus_address());
    std::env::set_var("TSS2_LOG", "all+none");

    let expected = hmac_sha1(&hex::decode(YUBIKEY_SECRET).unwrap(), &reference_message(&[3u8; 32]));
    // KeePassXC lists the keys when its unlock dialog opens: the session is started and the key
    // checked then, so the challenge after the click is the HMAC alone (the resource manager's own
    // saving and loading of the session's context around it aside).
    let mut tpm = through_abrmd(&abrmd, &metadata);
    assert_eq!(tpm.list_keys().unwrap().len(), 1);
    proxy.clear();
    assert_eq!(&tpm.challenge(key, &[3u8; 32]).unwrap()[..], &expected[..]);
    let sent: Vec<u32> = proxy.commands();
    assert_eq!(by_client(&sent), [HMAC], "the click after listing: {sent:x?}");
    drop(tpm);

    // A key of the form made before the empty policy (its authValue authorises it) beside it: its
    // click reads the name at its handle first (an authorisation it sends could count against a key
    // put there since); the other key's click is still the HMAC alone (a session of each kind kept).
    let old_form = handle(0x8100_0110);
    swtpm_fixture::persist_authvalue_key(abrmd.tcti(), swtpm.dir(), old_form.value());
    let mut tpm = through_abrmd(&abrmd, &metadata);
    assert!(tpm.checked_key(old_form).unwrap().authorisation_may_count(), "recorded at first use");
    assert_eq!(tpm.list_keys().unwrap().len(), 2);
    for (key, expected) in [(old_form, vec![READ_PUBLIC, HMAC]), (key, vec![HMAC])] {
        proxy.clear();
        assert_eq!(tpm.challenge(key, &[3u8; 32]).unwrap().len(), 20);
        let sent: Vec<u32> = proxy.commands();
        assert_eq!(by_client(&sent), expected, "the click of {key} after listing both kinds: {sent:x?}");
    }
    drop(tpm);

    // A key kept in a file beside them: loaded when the keys are listed (the resource manager keeps
    // it), so its click is the HMAC alone too.
    let file_key = {
        let mut tpm = through_abrmd(&abrmd, &metadata);
        let secret = keepassxc_tpm::Secret::from_hex(YUBIKEY_SECRET).unwrap();
        tpm.import_file_key(&Default::default(), &secret, &swtpm.dir().join("twin.tss")).unwrap().handle
    };
    let mut tpm = through_abrmd(&abrmd, &metadata);
    assert_eq!(tpm.list_keys().unwrap().len(), 3);
    for (key, expected) in [(file_key, vec![HMAC]), (key, vec![HMAC])] {
        // tpm2-abrmd saves and flushes the key file's context a little after each answer.
        std::thread::sleep(Duration::from_millis(200));
        proxy.clear();
        assert_eq!(tpm.challenge(key, &[3u8; 32]).unwrap().len(), 20);
        std::thread::sleep(Duration::from_millis(200));
        let sent: Vec<u32> = proxy.commands();
        assert_eq!(by_client(&sent), expected, "the click of {key} after listing a key file too: {sent:x?}");
    }
    drop(tpm);

    let mut tpm = through_abrmd(&abrmd, &metadata);
    assert_eq!(&tpm.challenge(key, &[3u8; 32]).unwrap()[..], &expected[..]);
    proxy.clear();
    assert_eq!(&tpm.challenge(key, &[3u8; 32]).unwrap()[..], &expected[..]);
    let sent: Vec<u32> = proxy.commands();
    assert_eq!(sent.iter().filter(|&&c| c == HMAC).count(), 1, "{sent:x?}");
    assert!(!sent.contains(&START_AUTH_SESSION), "warm: the kept session, no new one: {sent:x?}");
    drop(tpm);

    // A process holding a kept session is killed: tpm2-abrmd frees it.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "behind_a_resource_manager_sessions_are_kept_and_freed_with_the_connection", "--nocapture"])
        .env(CHILD, &metadata)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    assert!(lines.map_while(Result::ok).any(|line| line.contains("ready")), "the child did its challenges");
    assert!(!sessions_in(&swtpm).is_empty(), "the child keeps its session between challenges");
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sessions_in(&swtpm).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sessions_in(&swtpm), "", "nothing left loaded after SIGKILL behind the resource manager");
}
