//! Two programs sharing one TPM through tpm2-abrmd, as KeePassXC's GUI and keepassxc-cli would:
//! 2 × 500 challenge processes at the same time, every one answered correctly.

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use swtpm_fixture::{Abrmd, Swtpm};

const CHALLENGES_PER_PROCESS: usize = 500;

fn tpm_hmac(abrmd: &Abrmd, metadata: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tpm-hmac"))
        .args(["--tcti", abrmd.tcti()])
        .args(args)
        .env("DBUS_SESSION_BUS_ADDRESS", abrmd.bus_address())
        .env("KEEPASSXC_TPM_METADATA", metadata)
        .output()
        .expect("run tpm-hmac")
}

#[test]
fn two_programs_share_the_tpm_through_abrmd() {
    let swtpm = Swtpm::start();
    let abrmd = Abrmd::start(&swtpm);
    let metadata = swtpm.dir().join("keys.json");
    let secret = swtpm.dir().join("secret.hex");
    std::fs::write(&secret, "303132333435363738393a3b3c3d3e3f40414243").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tpm_hmac(&abrmd, &metadata, &["list"]).status.success() {
        assert!(Instant::now() < deadline, "tpm2-abrmd did not come up");
        sleep(Duration::from_millis(100));
    }
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
