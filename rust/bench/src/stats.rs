//! Samples, medians and 95th percentiles.

use std::time::Duration;

/// Wall times of one path, in nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<u64>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_nanos() as u64);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The value at quantile `q` (nearest rank), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let mut v = self.0.clone();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s = Samples((1..=100).map(|i| i * 1_000_000).collect());
        assert_eq!(s.median_ms(), 50.0);
        assert_eq!(s.p95_ms(), 95.0);
        assert_eq!(Samples(vec![3_000_000]).p95_ms(), 3.0);
        assert!(Samples::default().median_ms().is_nan());
    }
}
