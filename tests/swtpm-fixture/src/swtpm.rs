//! A swtpm of the test's own: its state in a temp dir, free loopback ports, killed in Drop.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct Swtpm {
    child: Option<Child>,
    state: TempDir,
    port: u16,
}

impl Swtpm {
    /// Starts a fresh TPM (manufactured, started up) on free ports.
    pub fn start() -> Swtpm {
        let state = tempfile::Builder::new().prefix("swtpm-").tempdir().expect("temp dir");
        let mut tpm = Swtpm { child: None, state, port: 0 };
        tpm.launch();
        tpm
    }

    /// The TCTI string for tss-esapi and tpm2-tools.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("swtpm is running").id()
    }

    /// A directory that lives as long as this TPM, for test files.
    pub fn dir(&self) -> &std::path::Path {
        self.state.path()
    }

    /// Stops the TPM (as a power loss would) and starts it again on the same state.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Freezes the TPM (SIGSTOP): it keeps its connections but answers nothing.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen TPM answer again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.pid().to_string()]).status().expect("kill");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn launch(&mut self) {
        // Choosing free ports and binding them is not atomic: serialise it within the process,
        // and check afterwards that the swtpm answering is ours (a second one would have exited).
        static LAUNCH: Mutex<()> = Mutex::new(());
        let _serial = LAUNCH.lock().unwrap_or_else(|p| p.into_inner());
        let state = self.state.path().join("state");
        std::fs::create_dir_all(&state).expect("state dir");
        for attempt in 0..10 {
            // A restart keeps the port when it can, as a rebooted TPM keeps its device.
            let port = if attempt == 0 && self.port != 0 { self.port } else { free_port_pair() };
            let mut child = Command::new("swtpm")
                .args(["socket", "--tpm2"])
                .args(["--server", &format!("type=tcp,port={port},bindaddr=127.0.0.1")])
                .args(["--ctrl", &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1)])
                .args(["--tpmstate", &format!("dir={}", state.display())])
                .args(["--flags", "not-need-init,startup-clear"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start swtpm (install swtpm and swtpm-tools)");
            if wait_until_serving(port, &mut child) {
                self.child = Some(child);
                self.port = port;
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("swtpm did not start on any free loopback port");
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port P such that P and P+1 are both free on loopback: the swtpm TCTI expects the
/// control channel on the port after the command port.
pub(crate) fn free_port_pair() -> u16 {
    listener_pair().0.local_addr().expect("address").port()
}

/// Two listening loopback sockets on adjacent ports.
pub(crate) fn listener_pair() -> (TcpListener, TcpListener) {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = first.local_addr().expect("address").port();
        if port == u16::MAX {
            continue;
        }
        if let Ok(second) = TcpListener::bind(("127.0.0.1", port + 1)) {
            return (first, second);
        }
    }
}

/// True once swtpm answers on its socket; false when it exited.
fn wait_until_serving(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // A swtpm that lost the race for the port exits at once; ours keeps running.
            sleep(Duration::from_millis(30));
            return matches!(child.try_wait(), Ok(None));
        }
        sleep(Duration::from_millis(20));
    }
    false
}
