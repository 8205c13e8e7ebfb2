//! A TPM connection on a thread of its own, so that a TPM that stops answering costs the caller
//! a timeout instead of a hang: tpm2-tss has no client-side timeout. After a timeout the
//! worker's thread is abandoned (it ends when the TPM answers or the process exits) and the next
//! operation gets a new thread and connection, so one hang costs one timeout, not one per call.
//! A TPM that hangs for good would leave one stuck thread (and connection) per timeout: at most
//! [`MAX_STUCK`] are left waiting; beyond that operations fail at once, until one of them returns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::options::TpmOptions;
use crate::tpm::Tpm;

/// How long one operation may take before the TPM is given up on. Real TPMs answer an HMAC in
/// milliseconds and create a key in well under a second.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Abandoned threads (each holding a connection) left waiting for a TPM that does not answer, at
/// most; while that many are stuck no new thread is started and operations fail at once.
pub const MAX_STUCK: usize = 2;

type Job = Box<dyn FnOnce(&mut Option<Tpm>) + Send>;

/// A TPM connection on its own thread, whose operations give up after a timeout.
pub struct TpmWorker {
    thread: Mutex<WorkerThread>,
    /// Threads running now, the current one included (each counts itself out when it ends).
    running: Arc<AtomicUsize>,
    options: TpmOptions,
    timeout: Duration,
}

/// The thread that holds the connection, and how many threads were abandoned before it.
struct WorkerThread {
    jobs: Option<mpsc::Sender<Job>>,
    handle: Option<thread::JoinHandle<()>>,
    generation: u64,
}

/// Counts a worker thread out of `running` when it ends, however it ends.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WorkerThread {
    fn spawn(generation: u64, running: &Arc<AtomicUsize>) -> WorkerThread {
        let (jobs, queue) = mpsc::channel::<Job>();
        running.fetch_add(1, Ordering::SeqCst);
        let counted = Running(running.clone());
        let spawned = thread::Builder::new().name("tpm".to_owned()).spawn(move || {
            let _counted = counted;
            let mut tpm = None;
            for job in queue {
                job(&mut tpm);
            }
        });
        // Without a thread every job fails below with "not answering"; nothing panics.
        WorkerThread { jobs: Some(jobs), handle: spawned.ok(), generation }
    }

    /// A worker without a thread (too many are stuck): its jobs fail at once.
    fn none(generation: u64) -> WorkerThread {
        WorkerThread { jobs: None, handle: None, generation }
    }
}

impl TpmWorker {
    /// A worker for the connection `options` describe; it is opened by the first job, and again
    /// after it was lost.
    pub fn start(options: TpmOptions, timeout: Duration) -> TpmWorker {
        let running = Arc::new(AtomicUsize::new(0));
        TpmWorker { thread: Mutex::new(WorkerThread::spawn(0, &running)), running, options, timeout }
    }

    fn thread(&self) -> MutexGuard<'_, WorkerThread> {
        self.thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `job` on the connection and waits for it at most the timeout.
    pub fn run<T: Send + 'static>(&self, job: impl FnOnce(&mut Tpm) -> Result<T> + Send + 'static) -> Result<T> {
        let (reply, answer) = mpsc::sync_channel(1);
        let options = self.options.clone();
        let job: Job = Box::new(move |slot: &mut Option<Tpm>| {
            let result = match slot {
                Some(tpm) => job(tpm),
                None => Tpm::open(&options).and_then(|tpm| job(slot.insert(tpm))),
            };
            if result.as_ref().is_err_and(|e| e.kind() == ErrorKind::NoTpm) {
                // A connection that failed stays failed in tpm2-tss: open a new one next time.
                *slot = None;
            }
            let _ = reply.send(result);
        });
        // The lock is not held while the job runs: callers queue on the thread, not on the lock.
        let (jobs, generation) = {
            let mut thread = self.thread();
            if thread.jobs.is_none() && self.running.load(Ordering::SeqCst) < MAX_STUCK {
                // The thread was given up on, and a stuck one has returned since: a new one.
                *thread = WorkerThread::spawn(thread.generation + 1, &self.running);
            }
            (thread.jobs.clone(), thread.generation)
        };
        let sent = jobs.is_some_and(|jobs| jobs.send(job).is_ok());
        match sent.then(|| answer.recv_timeout(self.timeout)) {
            Some(Ok(result)) => result,
            _ => {
                self.abandon(generation);
                Err(Error::Timeout { seconds: self.timeout.as_secs() })
            }
        }
    }

    /// Leaves the thread of `generation` to itself (it may never return) and starts a new one,
    /// unless another caller has done so already, or [`MAX_STUCK`] threads are stuck already (then
    /// the next operation starts one once a stuck thread has returned).
    fn abandon(&self, generation: u64) {
        let mut thread = self.thread();
        if thread.generation == generation {
            // Dropping the JoinHandle detaches the stuck thread; its queue closes with the sender.
            *thread = if self.running.load(Ordering::SeqCst) < MAX_STUCK {
                WorkerThread::spawn(generation + 1, &self.running)
            } else {
                WorkerThread::none(generation + 1)
            };
        }
    }
}

/// Closes the connection on its own thread and waits for that, so the TPM gets its sessions
/// flushed and the process does not exit (running OpenSSL's cleanup) while the thread still
/// frees memory. Abandoned threads are not waited for.
impl Drop for TpmWorker {
    fn drop(&mut self) {
        let thread = self.thread.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        thread.jobs = None;
        if let Some(handle) = thread.handle.take() {
            let _ = handle.join();
        }
    }
}
