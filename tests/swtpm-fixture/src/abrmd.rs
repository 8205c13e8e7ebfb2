//! tpm2-abrmd, the user-space resource manager, in front of a test's swtpm, on a private D-Bus
//! session bus of its own: several processes can then share the TPM as on a desktop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::Swtpm;

pub struct Abrmd {
    dbus: Child,
    abrmd: Child,
    bus: PathBuf,
}

impl Abrmd {
    pub fn start(swtpm: &Swtpm) -> Abrmd {
        Self::start_at(swtpm, &swtpm.tcti())
    }

    /// tpm2-abrmd in front of `tcti` (e.g. a proxy in front of `swtpm`), its bus in swtpm's directory.
    pub fn start_at(swtpm: &Swtpm, tcti: &str) -> Abrmd {
        let bus = swtpm.dir().join("bus");
        let dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", &format!("--address=unix:path={}", bus.display())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start dbus-daemon (install dbus-daemon)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !bus.exists() && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
        let abrmd = Command::new("tpm2-abrmd")
            .args(["--session", "--allow-root", &format!("--tcti={tcti}")])
            .env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", bus.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start tpm2-abrmd (install tpm2-abrmd and libtss2-tcti-tabrmd0)");
        Abrmd { dbus, abrmd, bus }
    }

    /// The TCTI string for clients.
    pub fn tcti(&self) -> &'static str {
        "tabrmd:bus_type=session"
    }

    /// The environment a client needs to find the private bus.
    pub fn bus_address(&self) -> String {
        format!("unix:path={}", self.bus.display())
    }
}

impl Drop for Abrmd {
    fn drop(&mut self) {
        for child in [&mut self.abrmd, &mut self.dbus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
