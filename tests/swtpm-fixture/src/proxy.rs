//! A loopback proxy in front of a TPM simulator that records the command code of every TPM
//! command sent through it (and can keep the raw bytes, for the bus-encryption checks).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// What crossed the proxy.
#[derive(Clone, Default)]
pub struct CommandLog {
    inner: Arc<Mutex<Log>>,
    port: u16,
}

/// An answer the proxy gives instead of the TPM.
struct Fault {
    command: u32,
    response_code: u32,
    remaining: usize,
}

/// How the proxy alters the TPM's answer to one command, as an attacker on the bus could.
#[derive(Clone, Copy, Debug)]
pub enum Tamper {
    /// Flip the bits of the byte at this offset of the response (clamped to its last byte).
    Flip(usize),
    /// Cut the response to this many bytes, with its size field saying so: a complete but
    /// malformed answer.
    Truncate(usize),
    /// Lose the answer: the connection is closed instead (the command itself was carried out).
    Lose,
}

#[derive(Default)]
struct Log {
    commands: Vec<u32>,
    /// The first authorising session of each TPM2_HMAC sent (none for a command without sessions).
    hmac_sessions: Vec<Option<u32>>,
    /// (command code, response code) of each answer, in order.
    answers: Vec<(u32, u32)>,
    faults: Vec<Fault>,
    /// Armed alterations: (command code, matching responses to let pass first, how).
    tampers: Vec<(u32, usize, Tamper)>,
    /// Commands sent and not yet answered, to match responses to them.
    unanswered: std::collections::VecDeque<u32>,
    to_tpm: Vec<u8>,
    from_tpm: Vec<u8>,
}

impl CommandLog {
    /// Listens on free loopback ports P, P+1 and forwards them to the swtpm at
    /// `upstream_port` (commands) and `upstream_port + 1` (control, passed through unlogged).
    pub fn start(upstream_port: u16) -> CommandLog {
        let (commands, control) = crate::swtpm::listener_pair();
        let port = commands.local_addr().expect("proxy address").port();
        let log = CommandLog { inner: Arc::default(), port };
        let shared = log.clone();
        thread::spawn(move || {
            for client in commands.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                shared.pump(client, server, true);
            }
        });
        let shared = log.clone();
        thread::spawn(move || {
            for client in control.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port + 1)) else {
                    continue;
                };
                shared.pump(client, server, false);
            }
        });
        log
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Command codes seen so far (e.g. 0x0173 ReadPublic, 0x0155 HMAC).
    pub fn commands(&self) -> Vec<u32> {
        self.inner.lock().expect("log").commands.clone()
    }

    /// The session that authorised each TPM2_HMAC sent, as the command's authorisation area names
    /// it: 0x02xxxxxx an HMAC session, 0x03xxxxxx a policy session, 0x40000009 a password.
    pub fn hmac_sessions(&self) -> Vec<Option<u32>> {
        self.inner.lock().expect("log").hmac_sessions.clone()
    }

    /// (command code, response code) of every answer the client got, in order.
    pub fn answers(&self) -> Vec<(u32, u32)> {
        self.inner.lock().expect("log").answers.clone()
    }

    /// Answers the next `times` commands with code `command` (e.g. 0x155, HMAC) with
    /// `response_code` (e.g. 0x922, TPM_RC_RETRY) instead of passing them to the TPM.
    pub fn inject(&self, command: u32, response_code: u32, times: usize) {
        self.inner.lock().expect("log").faults.push(Fault { command, response_code, remaining: times });
    }

    /// Alters the TPM's answer to the next command with code `command` as `how` says.
    pub fn tamper(&self, command: u32, how: Tamper) {
        self.tamper_later(command, 0, how);
    }

    /// [`CommandLog::tamper`] for the answer after the next `skip` answers to `command`.
    pub fn tamper_later(&self, command: u32, skip: usize, how: Tamper) {
        self.inner.lock().expect("log").tampers.push((command, skip, how));
    }

    /// Alterations armed and not yet applied.
    pub fn armed(&self) -> usize {
        self.inner.lock().expect("log").tampers.len()
    }

    pub fn clear(&self) {
        let mut log = self.inner.lock().expect("log");
        *log = Log::default();
    }

    /// Every byte sent in either direction.
    pub fn traffic(&self) -> (Vec<u8>, Vec<u8>) {
        let log = self.inner.lock().expect("log");
        (log.to_tpm.clone(), log.from_tpm.clone())
    }

    fn pump(&self, client: TcpStream, server: TcpStream, logged: bool) {
        let (c2, s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
        let log = logged.then(|| self.inner.clone());
        let log2 = log.clone();
        thread::spawn(move || forward(client, server, log, true));
        thread::spawn(move || forward(s2, c2, log2, false));
    }
}

/// Copies one direction, a TPM message at a time (tag 2 bytes, size 4, code 4): commands are
/// logged and answered by the proxy itself while a fault is armed for their code; responses are
/// logged, matched to their command and altered while a tamper is armed for it.
fn forward(mut from: TcpStream, mut to: TcpStream, log: Option<Arc<Mutex<Log>>>, to_tpm: bool) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Some(log) = log.as_ref() else {
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            continue;
        };
        pending.extend_from_slice(&buf[..n]);
        while pending.len() >= 10 {
            let size = u32::from_be_bytes([pending[2], pending[3], pending[4], pending[5]]) as usize;
            if pending.len() < size.max(10) {
                break;
            }
            let mut message: Vec<u8> = pending.drain(..size.max(10)).collect();
            let sent = if to_tpm {
                match command(log, &message) {
                    // TPM_ST_NO_SESSIONS, size 10, the response code: a TPM that answers "not now".
                    Some(rc) => {
                        log.lock().expect("log").unanswered.pop_back();
                        from.write_all(&[&[0x80, 0x01, 0, 0, 0, 10][..], &rc.to_be_bytes()].concat())
                    }
                    None => to.write_all(&message),
                }
            } else if response(log, &mut message) {
                to.write_all(&message)
            } else {
                Err(std::io::Error::other("answer lost on purpose"))
            };
            if sent.is_err() {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// Logs a command; the response code to answer it with when a fault is armed for it.
fn command(log: &Mutex<Log>, message: &[u8]) -> Option<u32> {
    let code = u32::from_be_bytes([message[6], message[7], message[8], message[9]]);
    let mut log = log.lock().expect("log");
    log.to_tpm.extend_from_slice(message);
    log.commands.push(code);
    log.unanswered.push_back(code);
    if code == crate::commands::HMAC {
        // TPM_ST_SESSIONS (0x8002): header (10), the key's handle (4), authorizationSize (4), then
        // the first session's handle.
        let with_sessions = message[..2] == [0x80, 0x02];
        let session =
            message.get(18..22).filter(|_| with_sessions).map(|h| u32::from_be_bytes(h.try_into().expect("4 bytes")));
        log.hmac_sessions.push(session);
    }
    let fault = log.faults.iter_mut().find(|f| f.command == code && f.remaining > 0)?;
    fault.remaining -= 1;
    Some(fault.response_code)
}

/// Logs a response and alters it when a tamper is armed for its command; false when the answer
/// is to be lost.
fn response(log: &Mutex<Log>, message: &mut Vec<u8>) -> bool {
    let mut log = log.lock().expect("log");
    log.from_tpm.extend_from_slice(message);
    let Some(code) = log.unanswered.pop_front() else { return true };
    if let Some(rc) = message.get(6..10) {
        let rc = u32::from_be_bytes(rc.try_into().expect("4 bytes"));
        log.answers.push((code, rc));
    }
    let Some(i) = log.tampers.iter().position(|(c, _, _)| *c == code) else { return true };
    if log.tampers[i].1 > 0 {
        log.tampers[i].1 -= 1;
        return true;
    }
    match log.tampers.remove(i).2 {
        Tamper::Flip(at) => {
            let at = at.min(message.len() - 1);
            message[at] ^= 0xFF;
        }
        Tamper::Truncate(len) => {
            message.truncate(len.max(10));
            let size = (message.len() as u32).to_be_bytes();
            message[2..6].copy_from_slice(&size);
        }
        Tamper::Lose => return false,
    }
    true
}
