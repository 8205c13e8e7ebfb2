//! A TPM that hangs for good costs a timeout per operation, never a growing pile of threads (each
//! holding a connection): the PC/SC driver inside pcscd and KeePassXC's backend live for hours.
#![cfg(unix)]

use std::time::{Duration, Instant};

use keepassxc_tpm::{Error, TpmWorker};
use swtpm_fixture::Swtpm;

mod common;
use common::*;

/// The worker threads ("tpm") of this process, stuck or not.
fn tpm_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "tpm")
        .count()
}

#[test]
fn a_tpm_that_never_answers_leaves_at_most_two_threads_waiting() {
    let swtpm = Swtpm::start();
    let worker = TpmWorker::start(options_at(&swtpm, &swtpm.tcti()), Duration::from_millis(500));
    assert!(worker.run(|tpm| tpm.list_keys()).is_ok(), "positive control");

    swtpm.freeze();
    for attempt in 0..8 {
        let started = Instant::now();
        assert!(matches!(worker.run(|tpm| tpm.list_keys()), Err(Error::Timeout { .. })), "attempt {attempt}");
        assert!(started.elapsed() < Duration::from_secs(2), "attempt {attempt}: {:?}", started.elapsed());
    }
    assert!(tpm_threads() <= 2, "{} threads wait for the TPM after 8 timeouts", tpm_threads());

    swtpm.thaw();
    // The stuck threads get their answers and end; the next operation gets a thread again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answered = loop {
        match worker.run(|tpm| tpm.list_keys()) {
            Ok(keys) => break keys,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("the TPM is back, the worker is not: {e}"),
        }
    };
    assert!(answered.is_empty());
    assert!(tpm_threads() <= 2, "{} threads", tpm_threads());
}
