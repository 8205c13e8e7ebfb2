//! A TPM connection on a thread of its own, so that a TPM that stops answering costs the caller
//! a timeout instead of a hang: tpm2-tss has no client-side timeout. After a timeout the
//! worker is abandoned (its thread ends when the TPM answers or the process exits) and the
//! caller starts a new one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::tpm::Tpm;

/// How long one operation may take before the TPM is given up on. Real TPMs answer an HMAC in
/// milliseconds and create a key in well under a second.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce(&mut Option<Tpm>) + Send>;

/// A TPM connection on its own thread, whose operations give up after a timeout.
pub struct TpmWorker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
    /// A job timed out: the thread may never return, so it is not waited for.
    stuck: AtomicBool,
    tcti: Option<String>,
    timeout: Duration,
}

impl TpmWorker {
    /// A worker for the TPM named by `tcti` (else the environment or the default search); the
    /// connection is opened by the first job, and again after it was lost.
    pub fn start(tcti: Option<String>, timeout: Duration) -> TpmWorker {
        let (jobs, queue) = mpsc::channel::<Job>();
        let spawned = thread::Builder::new().name("tpm".to_owned()).spawn(move || {
            let mut tpm = None;
            for job in queue {
                job(&mut tpm);
            }
        });
        // Without a thread every job fails below with "not answering"; nothing panics.
        TpmWorker { jobs: Some(jobs), thread: spawned.ok(), stuck: AtomicBool::new(false), tcti, timeout }
    }

    /// Runs `job` on the connection and waits for it at most the timeout.
    pub fn run<T: Send + 'static>(&self, job: impl FnOnce(&mut Tpm) -> Result<T> + Send + 'static) -> Result<T> {
        let (reply, answer) = mpsc::sync_channel(1);
        let tcti = self.tcti.clone();
        let job: Job = Box::new(move |slot: &mut Option<Tpm>| {
            let result = match slot {
                Some(tpm) => job(tpm),
                None => Tpm::open(tcti.as_deref()).and_then(|tpm| job(slot.insert(tpm))),
            };
            if result.as_ref().is_err_and(|e| e.kind() == ErrorKind::NoTpm) {
                // A connection that failed stays failed in tpm2-tss: open a new one next time.
                *slot = None;
            }
            let _ = reply.send(result);
        });
        let timed_out = || {
            self.stuck.store(true, Ordering::Relaxed);
            Error::Timeout { seconds: self.timeout.as_secs() }
        };
        self.jobs.as_ref().ok_or_else(timed_out)?.send(job).map_err(|_| timed_out())?;
        answer.recv_timeout(self.timeout).map_err(|_| timed_out())?
    }
}

/// Closes the connection on its own thread and waits for that, so the TPM gets its sessions
/// flushed and the process does not exit (running OpenSSL's cleanup) while the thread still
/// frees memory. A stuck thread is left behind.
impl Drop for TpmWorker {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            if !self.stuck.load(Ordering::Relaxed) {
                let _ = thread.join();
            }
        }
    }
}
