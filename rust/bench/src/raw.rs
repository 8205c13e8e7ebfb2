//! The floor: one TPM2_HMAC command, its bytes written by hand, over a TCP connection to swtpm
//! that stays open. No TSS library, no marshalling code, no session setup: what no client can
//! beat on this transport.

use std::io::{Read, Write};
use std::net::TcpStream;

use swtpm_fixture::commands;

const TPM_ST_SESSIONS: u16 = 0x8002;
const TPM_RS_PW: u32 = 0x4000_0009;
const TPM_ALG_NULL: u16 = 0x0010;

/// A connection to swtpm's command port (the swtpm TCTI speaks raw TPM commands there).
pub struct RawTpm {
    stream: TcpStream,
    command: Vec<u8>,
}

impl RawTpm {
    /// Connects and prepares `TPM2_HMAC(handle, message, TPM_ALG_NULL)` with an empty password.
    pub fn connect(port: u16, handle: u32, message: &[u8]) -> std::io::Result<RawTpm> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        Ok(RawTpm { stream, command: hmac_command(handle, message) })
    }

    /// Sends the command and returns the digest (checks the response code).
    pub fn hmac(&mut self) -> std::io::Result<Vec<u8>> {
        exchange(&mut self.stream, &self.command)
    }
}

/// `command` on a new connection, closed afterwards: what tpm2-tss 3.2's swtpm TCTI does for
/// every command (socket, connect, write, read, close).
pub fn on_new_connection(port: u16, command: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    exchange(&mut stream, command)
}

fn exchange(stream: &mut TcpStream, command: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(command)?;
    let body = read_response(stream, "TPM2_HMAC")?;
    // parameterSize (4), TPM2B_DIGEST (2 + n), then the session's response area.
    let n = u16::from_be_bytes([body[4], body[5]]) as usize;
    Ok(body[6..6 + n].to_vec())
}

/// TPM2_HMAC: header, key handle, authorization area (password session, empty password),
/// TPM2B_MAX_BUFFER message, hash algorithm NULL (the key's own scheme).
pub fn hmac_command(handle: u32, message: &[u8]) -> Vec<u8> {
    let mut auth = Vec::new();
    auth.extend(TPM_RS_PW.to_be_bytes());
    auth.extend(0u16.to_be_bytes()); // nonce
    auth.push(0); // session attributes
    auth.extend(0u16.to_be_bytes()); // hmac (the password)
    let mut body = Vec::new();
    body.extend(handle.to_be_bytes());
    body.extend((auth.len() as u32).to_be_bytes());
    body.extend(auth);
    body.extend((message.len() as u16).to_be_bytes());
    body.extend_from_slice(message);
    body.extend(TPM_ALG_NULL.to_be_bytes());
    let mut command = Vec::new();
    command.extend(TPM_ST_SESSIONS.to_be_bytes());
    command.extend(((10 + body.len()) as u32).to_be_bytes());
    command.extend(commands::HMAC.to_be_bytes());
    command.extend(body);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_layout() {
        let c = hmac_command(0x8100_0100, &[0xAA; 3]);
        assert_eq!(c.len(), 10 + 4 + 4 + 9 + 2 + 3 + 2);
        assert_eq!(&c[..2], &[0x80, 0x02]);
        assert_eq!(u32::from_be_bytes([c[2], c[3], c[4], c[5]]) as usize, c.len());
        assert_eq!(&c[6..10], &[0, 0, 1, 0x55]);
        assert_eq!(&c[10..14], &[0x81, 0, 1, 0]);
        assert_eq!(&c[c.len() - 2..], &[0, 0x10]);
    }
}

const TPM_ST_NO_SESSIONS: u16 = 0x8001;

/// Sends one command without sessions and returns the response parameters (after the header).
fn transact(stream: &mut TcpStream, code: u32, params: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut command = Vec::new();
    command.extend(TPM_ST_NO_SESSIONS.to_be_bytes());
    command.extend(((10 + params.len()) as u32).to_be_bytes());
    command.extend(code.to_be_bytes());
    command.extend_from_slice(params);
    stream.write_all(&command)?;
    read_response(stream, &format!("TPM command 0x{code:03X}"))
}

/// One TPM response: the body after the 10-byte header, or an error naming the response code.
fn read_response(stream: &mut TcpStream, what: &str) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; 10];
    stream.read_exact(&mut header)?;
    let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    let rc = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
    let mut body = vec![0u8; size.saturating_sub(10)];
    stream.read_exact(&mut body)?;
    if rc != 0 {
        return Err(std::io::Error::other(format!("{what} answered 0x{rc:08X}")));
    }
    Ok(body)
}

/// Handles from `first` on that are loaded (TPM2_GetCapability, TPM_CAP_HANDLES).
fn handles(stream: &mut TcpStream, first: u32) -> std::io::Result<Vec<u32>> {
    let mut params = Vec::new();
    params.extend(1u32.to_be_bytes()); // TPM_CAP_HANDLES
    params.extend(first.to_be_bytes());
    params.extend(64u32.to_be_bytes());
    let body = transact(stream, commands::GET_CAPABILITY, &params)?;
    // moreData (1), capability (4), count (4), handles
    let count = u32::from_be_bytes([body[5], body[6], body[7], body[8]]) as usize;
    Ok((0..count)
        .map(|i| {
            let o = 9 + 4 * i;
            u32::from_be_bytes([body[o], body[o + 1], body[o + 2], body[o + 3]])
        })
        .filter(|h| h >> 24 == first >> 24)
        .collect())
}

/// What a client left loaded in the TPM (sessions, transient objects).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub sessions: usize,
    pub objects: usize,
}

/// Flushes every loaded session and transient object, as a resource manager would when a
/// client disconnects (swtpm has none: 3 session and 3 object slots). Returns what was found.
pub fn flush_leftovers(port: u16) -> std::io::Result<Leftovers> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    let mut found = Leftovers::default();
    for (first, is_session) in [(0x0200_0000, true), (0x0300_0000, true), (0x8000_0000, false)] {
        for h in handles(&mut stream, first)? {
            transact(&mut stream, commands::FLUSH_CONTEXT, &h.to_be_bytes())?;
            if is_session {
                found.sessions += 1;
            } else {
                found.objects += 1;
            }
        }
    }
    Ok(found)
}
