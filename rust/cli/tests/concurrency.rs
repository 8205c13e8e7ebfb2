//! Two programs sharing one TPM through tpm2-abrmd, as KeePassXC's GUI and keepassxc-cli would:
//! 2 × 500 challenge processes at the same time, every one answered correctly; and two
//! provisioning at the same time, every record kept.
#![cfg(unix)]

mod common;

use std::thread::sleep;
use std::time::{Duration, Instant};

use swtpm_fixture::{Abrmd, Swtpm};

const CHALLENGES_PER_PROCESS: usize = 500;

fn tpm_hmac(abrmd: &Abrmd, metadata: &std::path::Path, args: &[&str]) -> std::process::Output {
    common::tpm_hmac(abrmd.tcti(), metadata)
        .args(args)
        .env("DBUS_SESSION_BUS_ADDRESS", abrmd.bus_address())
        .output()
        .expect("run tpm-hmac")
}

fn wait_for(abrmd: &Abrmd, metadata: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tpm_hmac(abrmd, metadata, &["list"]).status.success() {
        assert!(Instant::now() < deadline, "tpm2-abrmd did not come up");
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn concurrent_provisioning_loses_no_record() {
    const PER_PROGRAM: u8 = 10;
    let swtpm = Swtpm::start();
    let abrmd = Abrmd::start(&swtpm);
    let metadata = swtpm.dir().join("keys.json");
    wait_for(&abrmd, &metadata);
    std::thread::scope(|scope| {
        for program in 0..2u8 {
            let (abrmd, metadata, dir) = (&abrmd, &metadata, swtpm.dir());
            scope.spawn(move || {
                for i in 0..PER_PROGRAM {
                    let secret = dir.join(format!("secret-{program}-{i}.hex"));
                    std::fs::write(&secret, format!("{:02x}", program * 100 + i).repeat(20)).unwrap();
                    let out = tpm_hmac(abrmd, metadata, &["import", "--secret-file", secret.to_str().unwrap()]);
                    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                }
            });
        }
    });
    let listed: Vec<serde_json::Value> =
        serde_json::from_slice(&tpm_hmac(&abrmd, &metadata, &["list", "--json"]).stdout).unwrap();
    assert_eq!(listed.len(), 2 * PER_PROGRAM as usize);
    let records: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&metadata).unwrap()).unwrap();
    assert_eq!(records["keys"].as_object().unwrap().len(), 2 * PER_PROGRAM as usize, "a record for every key");
}

#[test]
fn racing_creates_without_a_handle_take_the_next_free_one() {
    // Two users' programs (each with its own metadata file, so no shared lock) create at once.
    const PER_PROGRAM: usize = 6;
    let swtpm = Swtpm::start();
    let abrmd = Abrmd::start(&swtpm);
    wait_for(&abrmd, &swtpm.dir().join("a.json"));
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = ["a.json", "b.json"]
            .map(|file| {
                let (abrmd, metadata) = (&abrmd, swtpm.dir().join(file));
                scope.spawn(move || {
                    (0..PER_PROGRAM)
                        .map(|_| tpm_hmac(abrmd, &metadata, &["create"]))
                        .filter(|out| !out.status.success())
                        .map(|out| String::from_utf8_lossy(&out.stderr).into_owned())
                        .collect::<Vec<_>>()
                })
            })
            .into_iter()
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{failures:?}");
    let listed: Vec<serde_json::Value> =
        serde_json::from_slice(&tpm_hmac(&abrmd, &swtpm.dir().join("a.json"), &["list", "--json"]).stdout).unwrap();
    assert_eq!(listed.len(), 2 * PER_PROGRAM);
}

#[test]
fn two_programs_share_the_tpm_through_abrmd() {
    let swtpm = Swtpm::start();
    let abrmd = Abrmd::start(&swtpm);
    let metadata = swtpm.dir().join("keys.json");
    let secret = swtpm.dir().join("secret.hex");
    std::fs::write(&secret, swtpm_fixture::yubikey::YUBIKEY_SECRET).unwrap();
    wait_for(&abrmd, &metadata);
    let import = tpm_hmac(&abrmd, &metadata, &["import", "--secret-file", secret.to_str().unwrap()]);
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let expected = tpm_hmac(&abrmd, &metadata, &["challenge", "--handle", "0x81000100", "--hex", "00ff"]).stdout;
    assert_eq!(expected.len(), 41);

    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    (0..CHALLENGES_PER_PROCESS)
                        .filter_map(|_| {
                            let out =
                                tpm_hmac(&abrmd, &metadata, &["challenge", "--handle", "0x81000100", "--hex", "00ff"]);
                            (!out.status.success() || out.stdout != expected)
                                .then(|| String::from_utf8_lossy(&out.stderr).into_owned())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} failed, e.g. {:?}",
        failures.len(),
        2 * CHALLENGES_PER_PROCESS,
        failures.first()
    );
}
