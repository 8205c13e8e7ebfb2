//! Samples, medians and 95th percentiles.

use std::time::Duration;

/// Wall times of one path, in nanoseconds, and the client CPU time one operation took.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    pub wall: Vec<u64>,
    /// CPU time of the client (all its threads; for a new-process path the whole process) per
    /// operation, in milliseconds, when measured.
    pub cpu_ms: Option<f64>,
}

impl Samples {
    pub fn from_wall(wall: Vec<u64>) -> Samples {
        Samples { wall, cpu_ms: None }
    }

    pub fn push(&mut self, d: Duration) {
        self.wall.push(d.as_nanos() as u64);
    }

    pub fn len(&self) -> usize {
        self.wall.len()
    }

    /// The value at quantile `q` (nearest rank), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let mut v = self.wall.clone();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_unstable();
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1] as f64 / 1e6
    }

    pub fn median_ms(&self) -> f64 {
        self.quantile_ms(0.5)
    }

    pub fn p95_ms(&self) -> f64 {
        self.quantile_ms(0.95)
    }
}

/// CPU time this process has used so far, all its live threads, in nanoseconds
/// (/proc/self/task/*/schedstat: nanosecond resolution).
pub fn process_cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time (user + system) of this process's children that were waited for, in nanoseconds
/// (/proc/self/stat fields cutime and cstime, in clock ticks of 1/100 s on Linux).
pub fn children_cpu_ns() -> u64 {
    const TICK_NS: u64 = 10_000_000;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name in parentheses, which may hold spaces.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // cutime and cstime are fields 16 and 17 of stat(5), 14 and 15 after the name's closing parenthesis.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(13) + ticks(14)) * TICK_NS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s = Samples::from_wall((1..=100).map(|i| i * 1_000_000).collect());
        assert_eq!(s.median_ms(), 50.0);
        assert_eq!(s.p95_ms(), 95.0);
        assert_eq!(Samples::from_wall(vec![3_000_000]).p95_ms(), 3.0);
        assert!(Samples::default().median_ms().is_nan());
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu_ns();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_ns() > before, "schedstat counts this thread's work");
    }
}
