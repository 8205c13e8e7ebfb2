//! The peers: tpm2-tools (one process per command) and tpm2-pytss (warm in one Python process,
//! and cold, a Python start per operation; `tests/bench/pytss_bench.py`).

use std::process::Command;

use crate::measure::{per_op, run_process, time_loop};
use crate::report::{Group, Kind, RowId};
use crate::stats::Samples;
use crate::{repo_root, Res};

impl crate::Bench {
    /// `tpm2_hmac`, one process per challenge.
    pub(crate) fn tools_challenge_row(&mut self) {
        let message_file = self.out.join("message.bin");
        let tools = self.processes(
            RowId::Tpm2Hmac.label(),
            self.opts.process_runs,
            |tcti| {
                let mut c = Command::new("tpm2_hmac");
                c.args(["-c", &crate::peer_handle_arg(), "--hex"]).arg(&message_file).env("TPM2TOOLS_TCTI", tcti);
                (c, None)
            },
            true,
        );
        self.push(Group::Challenge, Kind::Tpm2Tools, RowId::Tpm2Hmac, tools);
    }

    /// Breakdown: the start of a `tpm2_hmac` process, without the TPM.
    pub(crate) fn tools_start_row(&mut self) {
        let tools_version = self.processes(
            "",
            self.opts.process_runs,
            |_| {
                let mut c = Command::new("tpm2_hmac");
                c.arg("--version");
                (c, None)
            },
            false,
        );
        self.push(Group::Breakdown, Kind::Info, RowId::Tpm2HmacStart, tools_version);
    }

    /// tpm2-tools: what a script does: getcap, then readpublic per handle (one process each).
    pub(crate) fn tools_list_row(&mut self, g: Group) {
        let tools = (|| {
            let script = |tcti: &str| -> Res<()> {
                let (_, out) = run_process(
                    Command::new("tpm2_getcap").arg("handles-persistent").env("TPM2TOOLS_TCTI", tcti),
                    None,
                )?;
                for h in out.lines().filter_map(|l| l.trim().strip_prefix("- ")) {
                    run_process(Command::new("tpm2_readpublic").args(["-c", h]).env("TPM2TOOLS_TCTI", tcti), None)?;
                }
                Ok(())
            };
            let commands = self.count(|| script(&self.counted))?.1;
            for _ in 0..2 {
                script(&self.direct)?;
            }
            let samples = time_loop(self.opts.process_runs / 2, || script(&self.direct))?;
            Ok((samples, Some(commands)))
        })();
        self.push(g, Kind::Tpm2Tools, RowId::Tpm2ToolsList, tools);
    }

    /// tpm2-pytss, warm and cold, for `mode` "challenge" or "list"; for a challenge also the
    /// pieces of the cold path (breakdown).
    pub(crate) fn pytss_rows(&mut self, g: Group, mode: &str) -> Res<()> {
        let (warm_id, cold_id) = if mode == "challenge" {
            (RowId::PytssWarm, RowId::PytssCold)
        } else {
            (RowId::PytssListWarm, RowId::PytssListCold)
        };
        let Some(python) = self.python.clone() else {
            let why = self.pytss_missing.clone().unwrap_or_default();
            self.push(g, Kind::PytssWarm, warm_id, Err(why.clone().into()));
            self.push(g, Kind::PytssCold, cold_id, Err(why.into()));
            return Ok(());
        };
        let script = repo_root().join("tests/bench/pytss_bench.py");
        let message_hex = hex::encode(&self.message);
        let pytss = |tcti: &str, warm: usize| {
            let mut c = Command::new(&python);
            c.arg(&script)
                .args(["--tcti", tcti, "--mode", mode, "--handle", &crate::peer_handle_arg(), "--hex", &message_hex])
                .args(["--warm", &warm.to_string()]);
            c
        };
        let check = |out: &str| -> Res<serde_json::Value> {
            let v: serde_json::Value =
                serde_json::from_str(out.trim()).map_err(|e| format!("pytss output: {e}: {out}"))?;
            let result = v["result"].as_str().unwrap_or_default();
            if mode == "challenge" {
                self.check("tpm2-pytss", result)?;
            }
            Ok(v)
        };
        let runs = if mode == "challenge" { self.opts.warm_runs } else { self.opts.warm_runs / 4 };
        let warm = (|| {
            let base = self.count(|| run_process(&mut pytss(&self.counted, 0), None))?.1;
            let ten = self.count(|| run_process(&mut pytss(&self.counted, 10), None))?.1;
            let (_, out) = run_process(&mut pytss(&self.direct, runs), None)?;
            let v = check(&out)?;
            let samples =
                Samples::from_wall(v["warm_ns"].as_array().into_iter().flatten().filter_map(|x| x.as_u64()).collect());
            Ok((samples, Some(per_op(&base, &ten, 10))))
        })();
        let mut pieces = (Samples::default(), Samples::default(), Samples::default());
        let cold = (|| {
            let (_, commands) = self.count(|| run_process(&mut pytss(&self.counted, 0), None))?;
            let mut samples = Samples::default();
            for i in 0..self.opts.python_runs + 2 {
                let (d, out) = run_process(&mut pytss(&self.direct, 0), None)?;
                let v = check(&out)?;
                if i >= 2 {
                    samples.push(d);
                    pieces.0.wall.push(v["import_ns"].as_u64().unwrap_or(0));
                    pieces.1.wall.push(v["open_ns"].as_u64().unwrap_or(0));
                    pieces.2.wall.push(v["first_ns"].as_u64().unwrap_or(0));
                }
            }
            Ok((samples, Some(commands)))
        })();
        let ok = cold.is_ok();
        self.push(g, Kind::PytssWarm, warm_id, warm);
        self.push(g, Kind::PytssCold, cold_id, cold);
        if ok && mode == "challenge" {
            let b = Group::Breakdown;
            self.push(b, Kind::Info, RowId::PytssImport, Ok((pieces.0, None)));
            self.push(b, Kind::Info, RowId::PytssEsapi, Ok((pieces.1, None)));
            self.push(b, Kind::Info, RowId::PytssFirstHmac, Ok((pieces.2, None)));
        }
        Ok(())
    }
}
