//! One line per failure on stderr (pcscd's log), each marked as this driver's; never a challenge,
//! a response or a secret. Writing never panics (a lost journald stream makes `eprintln!` panic,
//! and a panic in the panic handler would abort pcscd), and any client can make the driver fail an
//! APDU, so the lines are rate-limited: at most [`BURST`] per [`WINDOW`], then one line saying how
//! many were left out.
#![forbid(unsafe_code)]

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines written per window at most.
pub(crate) const BURST: u32 = 10;
/// The window the burst is counted in.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

struct Limiter {
    window_start: Option<Instant>,
    written: u32,
    dropped: u64,
}

static LIMITER: Mutex<Limiter> = Mutex::new(Limiter { window_start: None, written: 0, dropped: 0 });

/// Writes `line` with the driver's prefix unless this window's lines are used up.
pub(crate) fn write_line(line: std::fmt::Arguments<'_>) {
    let mut limiter = LIMITER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let now = Instant::now();
    if limiter.window_start.is_none_or(|start| now.duration_since(start) >= WINDOW) {
        limiter.window_start = Some(now);
        limiter.written = 0;
    }
    if limiter.written >= BURST {
        limiter.dropped += 1;
        return;
    }
    limiter.written += 1;
    let dropped = std::mem::take(&mut limiter.dropped);
    let mut stderr = std::io::stderr().lock();
    if dropped > 0 {
        let _ = writeln!(stderr, "keepassxc-tpm-pcsc: ({dropped} earlier lines left out: more than {BURST} a minute)");
    }
    let _ = writeln!(stderr, "keepassxc-tpm-pcsc: {line}");
}

/// Writes one line to stderr with the driver's prefix (rate-limited; never panics).
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::log::write_line(format_args!($($arg)*))
    };
}
pub(crate) use log;
