//! How every path is measured: timed loops, processes run to their end, the commands counted
//! through the proxy, what a client left loaded in the TPM, and the rows recorded.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::raw;
use crate::report::{Group, Kind, Row, RowId};
use crate::stats::{self, Samples};
use crate::Res;

impl crate::Bench {
    /// Records row `id` with its label.
    pub(crate) fn push(&mut self, group: Group, kind: Kind, id: RowId, result: Res<(Samples, Option<Vec<u32>>)>) {
        self.push_labelled(group, kind, id, id.label().to_owned(), result);
    }

    /// Records row `id` under a label of its own (one that holds a value, like the key's serial).
    pub(crate) fn push_labelled(
        &mut self,
        group: Group,
        kind: Kind,
        id: RowId,
        label: String,
        result: Res<(Samples, Option<Vec<u32>>)>,
    ) {
        let row = match result {
            Ok((samples, commands)) => Row { group, kind, id, label, commands, samples, skipped: None },
            Err(why) => {
                eprintln!("*** {label}: SKIPPED: {why}");
                Row {
                    group,
                    kind,
                    id,
                    label,
                    commands: None,
                    samples: Samples::default(),
                    skipped: Some(why.to_string()),
                }
            }
        };
        self.rows.push(row);
    }

    /// The commands `f` sends through the proxy.
    pub(crate) fn count<T>(&self, f: impl FnOnce() -> Res<T>) -> Res<(T, Vec<u32>)> {
        self.log.clear();
        let value = f()?;
        Ok((value, self.log.commands()))
    }

    pub(crate) fn check(&self, what: &str, response: &str) -> Res<()> {
        if response.trim() == self.expected {
            Ok(())
        } else {
            Err(format!("{what} answered {:?}, expected {}", response.trim(), self.expected).into())
        }
    }

    /// Flushes what the last client left loaded in the TPM; records it under `what` (if any).
    /// Returns true when something was left.
    pub(crate) fn flush_after(&self, what: &str) -> bool {
        match raw::flush_leftovers(self.swtpm.port()) {
            Ok(left) if left != raw::Leftovers::default() => {
                let mut leaks = self.leaks.borrow_mut();
                if !what.is_empty() && !leaks.iter().any(|(w, _)| w == what) {
                    leaks.push((what.to_owned(), left));
                }
                true
            }
            Ok(_) => false,
            Err(e) => {
                eprintln!("*** flushing leftovers after {what}: {e}");
                false
            }
        }
    }

    /// A one-process-per-operation path: commands of one process (through the proxy), then
    /// `runs` timed processes straight to swtpm after 3 untimed ones. `check` names the
    /// response that stdout must hold (the last line, or the bridge child's JSON).
    pub(crate) fn processes(
        &self,
        what: &str,
        runs: usize,
        make: impl Fn(&str) -> (Command, Option<&[u8]>),
        check: bool,
    ) -> Res<(Samples, Option<Vec<u32>>)> {
        let verify = |out: &str| -> Res<()> {
            if !check {
                return Ok(());
            }
            let answer = match serde_json::from_str::<serde_json::Value>(out.trim()) {
                Ok(v) => v["response"].as_str().unwrap_or_default().to_owned(),
                Err(_) => last_line(out).to_owned(),
            };
            self.check(what, &answer)
        };
        let ((), commands) = self.count(|| {
            let (mut c, input) = make(&self.counted);
            run_process(&mut c, input).and_then(|(_, out)| verify(&out))
        })?;
        self.flush_after(what);
        let mut samples = Samples::default();
        let (mut failed, mut first_failure, mut leaky_runs) = (0, None, 0);
        let cpu = stats::children_cpu_ns();
        for i in 0..runs + 3 {
            let (mut c, input) = make(&self.direct);
            let result = run_process(&mut c, input);
            leaky_runs += usize::from(self.flush_after(""));
            // A run that fails is counted and reported, not timed; most failing ends the path.
            let (d, out) = match result.and_then(|(d, out)| verify(&out).map(|()| (d, out))) {
                Ok(ok) => ok,
                Err(e) => {
                    failed += 1;
                    first_failure.get_or_insert(e);
                    if failed > runs / 4 + 1 {
                        let first = first_failure.map(|e| e.to_string()).unwrap_or_default();
                        return Err(format!("{failed} runs failed, first: {first}").into());
                    }
                    continue;
                }
            };
            drop(out);
            if i >= 3 {
                samples.push(d);
            }
        }
        // Every process, also the untimed ones and the tpm2-tools flushes in between.
        samples.cpu_ms = Some((stats::children_cpu_ns() - cpu) as f64 / 1e6 / (runs + 3) as f64);
        if leaky_runs > 0 && !what.is_empty() {
            self.leaky.borrow_mut().push((what.to_owned(), leaky_runs, runs + 3));
        }
        if let Some(e) = first_failure {
            self.failures
                .borrow_mut()
                .push((what.to_owned(), format!("{failed} of {} runs failed; first: {e}", runs + 3)));
        }
        Ok((samples, Some(commands)))
    }
}

pub(crate) fn last_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}

/// The commands of one warm operation: what `N` more operations added, divided by `N`.
pub(crate) fn per_op(base: &[u32], with_n: &[u32], n: usize) -> Vec<u32> {
    let extra = with_n.len().saturating_sub(base.len()) / n;
    with_n.iter().skip(base.len()).take(extra).copied().collect()
}

/// `runs` timed calls of `f` after `runs / 10` (at least 3) untimed ones.
pub(crate) fn time_loop(runs: usize, mut f: impl FnMut() -> Res<()>) -> Res<Samples> {
    for _ in 0..(runs / 10).max(3) {
        f()?;
    }
    let mut samples = Samples::default();
    let cpu = stats::process_cpu_ns();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed());
    }
    samples.cpu_ms = Some((stats::process_cpu_ns() - cpu) as f64 / 1e6 / runs.max(1) as f64);
    Ok(samples)
}

/// Runs a process to its end, with `input` on stdin; its wall time and stdout.
pub(crate) fn run_process(cmd: &mut Command, input: Option<&[u8]>) -> Res<(Duration, String)> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let t = Instant::now();
    let mut child = cmd
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(bytes).map_err(|e| format!("{program}: stdin: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("{program}: {e}"))?;
    let d = t.elapsed();
    if !out.status.success() {
        return Err(
            format!("{program} failed ({}): {}", out.status, last_line(&String::from_utf8_lossy(&out.stderr))).into()
        );
    }
    Ok((d, String::from_utf8_lossy(&out.stdout).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_operation_commands() {
        assert_eq!(per_op(&[1, 2], &[1, 2, 3, 3, 3], 3), vec![3]);
        assert_eq!(per_op(&[1], &[1, 5, 6, 5, 6], 2), vec![5, 6]);
    }
}
