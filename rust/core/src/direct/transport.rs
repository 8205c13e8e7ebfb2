//! Sending a command and reading its response, for the two TCTIs the direct path speaks itself:
//! the kernel's resource manager (`device:/dev/tpmrm0`, one file descriptor for the connection,
//! whose sessions the kernel flushes when it closes) and swtpm (`swtpm:host=…,port=…`, a TCP
//! connection per command, as tpm2-tss's swtpm TCTI does, so the simulator stays free for other
//! clients between commands). Every other TCTI uses the ESYS path. On Windows the transport is
//! TBS (one context for the connection, whose objects and sessions TBS flushes when it closes).

#[cfg(unix)]
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::wire::MAX_RESPONSE;
#[cfg(unix)]
use crate::tcti::Tcti;

/// How long one command may take on the direct path before it is given up on (the worker's
/// timeout still bounds the whole challenge).
const IO_TIMEOUT: Duration = Duration::from_secs(5);

pub enum Transport {
    /// A resource manager's device: sessions live as long as this descriptor.
    #[cfg(unix)]
    ResourceManager(File),
    /// swtpm's command port.
    Swtpm(String),
    /// A TBS context (Windows): a resource manager too.
    #[cfg(windows)]
    Tbs(keepassxc_tpm_tbs::Context),
}

impl Transport {
    /// The transport for a TCTI, when the direct path speaks it.
    #[cfg(unix)]
    pub fn for_tcti(tcti: &Tcti) -> Option<Transport> {
        if let Some(device) = tcti.device().filter(|_| tcti.flushes_on_close()) {
            return OpenOptions::new().read(true).write(true).open(device).ok().map(Transport::ResourceManager);
        }
        let (host, port) = tcti.simulator()?;
        Some(Transport::Swtpm(format!("{host}:{port}")))
    }

    /// True when a resource manager flushes this connection's sessions when it closes, so a
    /// session may be kept from one challenge to the next.
    pub fn flushes_on_close(&self) -> bool {
        #[cfg(unix)]
        return matches!(self, Transport::ResourceManager(_));
        #[cfg(windows)]
        return matches!(self, Transport::Tbs(_));
    }

    /// Whether the TPM can be reached: the device is open already; swtpm's command port
    /// takes a connection (closed again at once, as tpm2-tss's swtpm TCTI checks it).
    pub fn check_reachable(&self) -> std::io::Result<()> {
        match self {
            #[cfg(unix)]
            Transport::ResourceManager(_) => Ok(()),
            #[cfg(windows)]
            Transport::Tbs(_) => Ok(()),
            Transport::Swtpm(address) => connect(address).map(drop),
        }
    }

    /// Sends `command` and returns the response.
    pub fn send(&mut self, command: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            #[cfg(windows)]
            Transport::Tbs(context) => {
                let response = context
                    .submit(command)
                    .map_err(|rc| std::io::Error::other(format!("TBS could not pass the command on (0x{rc:08X})")))?;
                // TBS "succeeds" with TPM_E_COMMAND_BLOCKED in the response code: the TPM never saw it.
                if response.get(6..10) == Some(&keepassxc_tpm_tbs::COMMAND_BLOCKED.to_be_bytes()[..]) {
                    let code = command.get(6..10).map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    return Err(std::io::Error::other(Blocked(code)));
                }
                Ok(response)
            }
            #[cfg(unix)]
            Transport::ResourceManager(device) => {
                device.write_all(command)?;
                let mut response = vec![0u8; MAX_RESPONSE];
                let n = device.read(&mut response)?;
                response.truncate(n);
                Ok(response)
            }
            Transport::Swtpm(address) => {
                let mut stream = connect(address)?;
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.set_write_timeout(Some(IO_TIMEOUT))?;
                stream.write_all(command)?;
                read_response(&mut stream)
            }
        }
    }
}

/// The command (its code) that Windows blocked for this user, as the error of [`Transport::send`].
#[cfg(windows)]
#[derive(Debug)]
pub struct Blocked(pub u32);

#[cfg(windows)]
impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Windows blocks the TPM command 0x{:08X} for this user", self.0)
    }
}

#[cfg(windows)]
impl std::error::Error for Blocked {}

/// A new connection to swtpm's command port at `address` (`host:port`), trying each address the
/// name has in turn, as tpm2-tss does (`localhost` may be ::1 first while swtpm listens on
/// 127.0.0.1).
fn connect(address: &str) -> std::io::Result<TcpStream> {
    let mut failure = std::io::Error::other("the name has no address");
    for target in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&target, IO_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => failure = e,
        }
    }
    Err(failure)
}

/// A response from a byte stream: the 10-byte header, then as many bytes as its size says.
fn read_response(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut response = vec![0u8; 10];
    stream.read_exact(&mut response)?;
    let size = u32::from_be_bytes([response[2], response[3], response[4], response[5]]) as usize;
    if !(10..=MAX_RESPONSE).contains(&size) {
        return Err(std::io::Error::other(format!("a response of {size} bytes")));
    }
    response.resize(size, 0);
    stream.read_exact(&mut response[10..])?;
    Ok(response)
}
