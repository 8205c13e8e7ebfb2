//! Where the TPM is: a TCTI configuration string (`device:/dev/tpmrm0`, `tabrmd:`,
//! `swtpm:host=…,port=…`, `mssim:…`) parsed once, with what every front end needs to know about it:
//! the environment and the default search, whether a resource manager flushes a connection's
//! sessions when it closes, the module's Debian package, and the conversion to tss-esapi's
//! `TctiNameConf`. (A Windows TBS would be one more kind.)

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tss_esapi::tcti_ldr::{ServerAddress, TctiNameConf};

use crate::error::{Error, Result};

/// Environment variables read for the TCTI, in tpm2-tools' order.
pub const TCTI_ENV_VARS: [&str; 3] = ["TPM2TOOLS_TCTI", "TCTI", "TEST_TCTI"];

/// The device tpm2-tss opens for `device:` without a path.
const DEFAULT_DEVICE: &str = "/dev/tpm0";

/// A TPM connection as named by a TCTI configuration string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tcti {
    /// The string as given (trimmed): messages name the TPM as the user named it.
    text: String,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// A character device: the kernel's resource manager (/dev/tpmrm*) or the raw TPM.
    Device(PathBuf),
    /// The tpm2-abrmd daemon, over D-Bus.
    Tabrmd,
    /// A simulator's command port (swtpm, or the Microsoft simulator): a TCP connection per command
    /// for swtpm, as tpm2-tss's module makes it.
    Swtpm {
        host: String,
        port: u16,
    },
    Mssim {
        host: String,
        port: u16,
    },
}

impl Tcti {
    /// Parses `conf`. tss-esapi 7 keeps only the options it knows and drops the rest without a
    /// word: `swtpm:path=…` (tpm2-tss's unix socket) would open swtpm on localhost:2321, another
    /// TPM than the one named. Such a string is refused instead.
    pub fn parse(conf: &str) -> Result<Tcti> {
        let text = conf.trim().to_owned();
        let (module, options) = text.split_once(':').unwrap_or((&text, ""));
        let options: Vec<(&str, &str)> =
            options.split(',').filter(|o| !o.is_empty()).map(|o| o.split_once('=').unwrap_or((o, ""))).collect();
        let understood: &[&str] = match module {
            "swtpm" | "mssim" => &["host", "port"],
            "tabrmd" => &["bus_name", "bus_type"],
            "device" => &[],
            _ => return Err(Error::UnknownTcti { tcti: text }),
        };
        if module != "device" {
            if let Some(&(key, value)) = options.iter().find(|(key, _)| !understood.contains(key)) {
                let option = if value.is_empty() { key.to_owned() } else { format!("{key}={value}") };
                return Err(Error::TctiOption { tcti: text.clone(), option, understood: understood.join(", ") });
            }
        }
        let option = |name: &str| options.iter().find(|(key, _)| *key == name).map(|(_, value)| *value);
        let unknown = || Error::UnknownTcti { tcti: text.clone() };
        let kind = match module {
            "device" => {
                let path = text.split_once(':').map_or("", |(_, path)| path);
                Kind::Device(PathBuf::from(if path.is_empty() { DEFAULT_DEVICE } else { path }))
            }
            "tabrmd" => Kind::Tabrmd,
            _ => {
                let host = option("host").unwrap_or("localhost").to_owned();
                let port = option("port").map_or(Ok(2321), str::parse).map_err(|_| unknown())?;
                if module == "swtpm" {
                    Kind::Swtpm { host, port }
                } else {
                    Kind::Mssim { host, port }
                }
            }
        };
        // tss-esapi must accept it too: it is what opens the connection. Its parser compiles
        // regular expressions (a third of a challenge's client time), so where the direct path
        // may be all there is to open, the one part it could refuse is asked alone.
        match &kind {
            Kind::Swtpm { host, .. } | Kind::Mssim { host, .. } => {
                ServerAddress::from_str(host).map_err(|_| unknown())?;
            }
            Kind::Tabrmd => {
                TctiNameConf::from_str(&text).map_err(|_| unknown())?;
            }
            Kind::Device(_) => {}
        }
        Ok(Tcti { text, kind })
    }

    /// The first TCTI set in the environment (`TPM2TOOLS_TCTI`, `TCTI`, `TEST_TCTI`), if any.
    pub fn from_environment() -> Option<Result<Tcti>> {
        configured().map(|conf| Tcti::parse(&conf))
    }

    /// Where to look when nothing is configured: the kernel's resource manager first (what systemd
    /// uses), then the tpm2-abrmd daemon (only where a system bus may answer: without one its
    /// module only prints glib's complaint), then the raw device. Devices that do not exist are
    /// left out.
    pub fn default_search() -> Vec<Tcti> {
        let device = |path: &str| Tcti { text: format!("device:{path}"), kind: Kind::Device(PathBuf::from(path)) };
        let tabrmd = Tcti { text: "tabrmd:".to_owned(), kind: Kind::Tabrmd };
        [device("/dev/tpmrm0"), tabrmd, device("/dev/tpm0")]
            .into_iter()
            .filter(|tcti| match &tcti.kind {
                Kind::Device(path) => path.exists(),
                _ => system_bus_present(),
            })
            .collect()
    }

    /// The configuration string, as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The TCTI module's name: "device", "tabrmd", "swtpm" or "mssim".
    pub fn module(&self) -> &'static str {
        match self.kind {
            Kind::Device(_) => "device",
            Kind::Tabrmd => "tabrmd",
            Kind::Swtpm { .. } => "swtpm",
            Kind::Mssim { .. } => "mssim",
        }
    }

    /// The Debian package of tpm2-tss's module for this TCTI.
    pub fn debian_package(&self) -> String {
        format!("libtss2-tcti-{}0", self.module())
    }

    /// The device of a `device:` TCTI.
    pub fn device(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Device(path) => Some(path),
            _ => None,
        }
    }

    /// The command port of a simulator: (host, port).
    pub fn simulator(&self) -> Option<(&str, u16)> {
        match &self.kind {
            Kind::Swtpm { host, port } => Some((host, *port)),
            _ => None,
        }
    }

    /// True for the kernel's resource manager (/dev/tpmrm*) and tpm2-abrmd: they flush a client's
    /// sessions when its connection closes, so a session may be kept from one challenge to the next
    /// even by a process that may end without cleaning up (KeePassXC). A raw TPM or a simulator has
    /// only three session slots, and a session left there stays until it is flushed.
    pub fn flushes_on_close(&self) -> bool {
        match &self.kind {
            Kind::Device(path) => path.to_string_lossy().contains("tpmrm"),
            Kind::Tabrmd => true,
            _ => false,
        }
    }

    /// The configuration tss-esapi opens (checked when parsed).
    pub(crate) fn name_conf(&self) -> Result<TctiNameConf> {
        TctiNameConf::from_str(&self.text).map_err(|_| Error::UnknownTcti { tcti: self.text.clone() })
    }
}

impl FromStr for Tcti {
    type Err = Error;

    fn from_str(conf: &str) -> Result<Tcti> {
        Tcti::parse(conf)
    }
}

impl fmt::Display for Tcti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The first TCTI string set in the environment, if any.
pub(crate) fn configured() -> Option<String> {
    TCTI_ENV_VARS.iter().find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
}

/// Whether a D-Bus system bus may answer (where tpm2-abrmd registers by default).
fn system_bus_present() -> bool {
    std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_some() || Path::new("/run/dbus/system_bus_socket").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcti_options_tss_esapi_would_drop_are_refused() {
        for ok in [
            "swtpm:host=127.0.0.1,port=2321",
            "swtpm:",
            "mssim:host=tpm.example",
            "tabrmd:bus_type=session",
            "device:/dev/tpmrm0",
        ] {
            let tcti = Tcti::parse(ok).unwrap();
            assert_eq!(tcti.as_str(), ok);
            assert!(tcti.name_conf().is_ok(), "tss-esapi takes what we take: {ok}");
        }
        let refused = |conf| match Tcti::parse(conf) {
            Err(Error::TctiOption { option, .. }) => option,
            other => panic!("{conf}: {other:?}"),
        };
        // tss-esapi would open localhost:2321 for these: another TPM than the one named
        assert_eq!(refused("swtpm:path=/run/swtpm/tpm.sock"), "path=/run/swtpm/tpm.sock");
        assert_eq!(refused("mssim:host=127.0.0.1,prot=2321"), "prot=2321");
        assert_eq!(refused("tabrmd:bus_type=session,bus=x"), "bus=x");
        let message = Tcti::parse("swtpm:path=/s").unwrap_err().explained();
        assert!(message.contains("\"path=/s\"") && message.contains("with host, port only"), "{message}");
        for unknown in ["cmd:tpm2_tool", "nonsense", "swtpm:port=notanumber", "swtpm:host=a b", "mssim:host=", ""] {
            assert!(matches!(Tcti::parse(unknown), Err(Error::UnknownTcti { .. })), "{unknown:?}");
        }
    }

    #[test]
    fn what_a_tcti_says_about_itself() {
        let tcti = Tcti::parse(" swtpm:host=127.0.0.1,port=2400 ").unwrap();
        assert_eq!(
            (tcti.as_str(), tcti.module(), tcti.simulator()),
            ("swtpm:host=127.0.0.1,port=2400", "swtpm", Some(("127.0.0.1", 2400)))
        );
        assert_eq!(Tcti::parse("swtpm:").unwrap().simulator(), Some(("localhost", 2321)));
        assert_eq!(Tcti::parse("device:").unwrap().device(), Some(Path::new("/dev/tpm0")));
        assert_eq!(Tcti::parse("tabrmd:").unwrap().debian_package(), "libtss2-tcti-tabrmd0");
    }

    #[test]
    fn resource_managers_are_told_by_their_tcti() {
        let flushes = |conf| Tcti::parse(conf).unwrap().flushes_on_close();
        assert!(flushes("device:/dev/tpmrm0"));
        assert!(flushes("tabrmd:bus_type=session"));
        assert!(flushes("tabrmd:"));
        assert!(!flushes("device:/dev/tpm0"));
        assert!(!flushes("swtpm:host=127.0.0.1,port=2321"));
        assert!(!flushes("mssim:"));
    }
}
