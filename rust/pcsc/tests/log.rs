//! The driver's log inside pcscd: a broken stderr (a lost journald stream) never turns a log line
//! into a panic, and so never into an abort of pcscd; and what any client can make the driver log
//! is rate-limited. Each case runs in a child process (this test binary again) whose stderr is a
//! pipe the parent closes or reads.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use keepassxc_tpm_pcsc::ifd::*;

/// Set in the child: which case to run.
const CHILD: &str = "KEEPASSXC_TPM_PCSC_LOG_CHILD";

/// Opens `count` readers on config files the driver refuses (writable by others), each refusal a
/// log line, and closes them.
fn open_refused_readers(count: u32) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pcsc.json");
    std::fs::write(&path, "{}").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let name = CString::new(path.to_str().unwrap()).unwrap();
    for reader in 1..=count {
        let lun = Dword::from(reader) << 16;
        // SAFETY: a NUL-terminated string that outlives the call.
        assert_eq!(unsafe { IFDHCreateChannelByName(lun, name.as_ptr()) }, IFD_SUCCESS);
        assert_eq!(IFDHICCPresence(lun), IFD_ICC_NOT_PRESENT);
        assert_eq!(IFDHCloseChannel(lun), IFD_SUCCESS);
    }
}

/// The child's part: runs only when the parent asks for it.
#[test]
fn child() {
    match std::env::var(CHILD).as_deref() {
        Ok("broken") => {
            // Ignored, as pcscd (like every Rust program) ignores it: a write to the closed pipe
            // fails with EPIPE instead of killing the process.
            open_refused_readers(3);
            println!("child survived");
        }
        Ok("flood") => open_refused_readers(200),
        _ => {}
    }
}

fn run_child(case: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_broken_stderr_is_no_crash() {
    let mut child = run_child("broken");
    drop(child.stderr.take());
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the driver must not panic (or abort) on a broken stderr: {status:?}\n{stdout}");
    assert!(stdout.contains("child survived"), "{stdout}");
}

#[test]
fn a_flood_of_failures_is_a_few_lines() {
    let child = run_child("flood");
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let log = String::from_utf8_lossy(&output.stderr);
    let lines = log.lines().filter(|l| l.starts_with("keepassxc-tpm-pcsc:")).count();
    assert!(lines > 0, "the first failures are logged: {log}");
    assert!(lines <= 11, "200 refused readers in a second: {lines} lines\n{log}");
}
