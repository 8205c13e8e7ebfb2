//! KeePassXC's path: the bridge called as the C++ driver calls it, in a child process of ours
//! (`child-bridge`), and a keepassxc-cli unlock with a fork build.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::measure::{per_op, run_process};
use crate::report::{Group, Kind, RowId};
use crate::stats::Samples;
use crate::{BenchError, Res, DB_PASSWORD, HANDLE};

impl crate::Bench {
    /// (c) the KeePassXC path: the bridge, as the C++ driver calls it.
    pub(crate) fn bridge_challenge_rows(&mut self, runs: usize) {
        let g = Group::Challenge;
        let bridge_warm = self.child_warm("challenge", "challenge", runs);
        self.push(g, Kind::Ours, RowId::BridgeWarm, bridge_warm);
        self.bridge_process_row(RowId::BridgeCold, "challenge");
        self.bridge_process_row(RowId::BridgeUnlockSequence, "list,challenge");
    }

    /// A row of bridge children, one process per run, each making `calls` (comma-separated).
    fn bridge_process_row(&mut self, id: RowId, calls: &str) {
        let samples = self.processes(
            id.label(),
            self.opts.process_runs,
            |tcti| (self.child(tcti, calls, "challenge", 0), None),
            true,
        );
        self.push(Group::Challenge, Kind::Ours, id, samples);
    }

    /// Breakdown: the start of a bridge child that makes no call.
    pub(crate) fn bridge_start_row(&mut self) {
        let empty_child =
            self.processes("", self.opts.process_runs, |tcti| (self.child(tcti, "", "challenge", 0), None), false);
        self.push(Group::Breakdown, Kind::Info, RowId::BridgeStart, empty_child);
    }

    /// Enumeration: bridge `list_keys`, warm and in a new process.
    pub(crate) fn bridge_list_rows(&mut self, g: Group, runs: usize) {
        let bridge_warm = self.child_warm("list", "list", runs);
        self.push(g, Kind::Ours, RowId::BridgeListWarm, bridge_warm);
        let bridge_cold = self.processes(
            "bridge list_keys, new process",
            self.opts.process_runs,
            |tcti| (self.child(tcti, "list", "list", 0), None),
            false,
        );
        self.push(g, Kind::Ours, RowId::BridgeListCold, bridge_cold);
    }

    fn child(&self, tcti: &str, ops: &str, warm_op: &str, warm: usize) -> Command {
        let mut c = Command::new(std::env::current_exe().expect("own path"));
        c.args(["child-bridge", "--ops", ops, "--warm-op", warm_op])
            .args(["--warm", &warm.to_string(), "--serial", &HANDLE.to_string()])
            .args(["--hex", &hex::encode(&self.seed)])
            .env("TPM2TOOLS_TCTI", tcti);
        c
    }

    /// Warm bridge calls timed inside one child process; commands per warm call.
    fn child_warm(&self, ops: &str, warm_op: &str, runs: usize) -> Res<(Samples, Option<Vec<u32>>)> {
        let base = self.count(|| run_process(&mut self.child(&self.counted, ops, warm_op, 0), None))?.1;
        self.flush_after("");
        let ten = self.count(|| run_process(&mut self.child(&self.counted, ops, warm_op, 10), None))?.1;
        self.flush_after("");
        let result = run_process(&mut self.child(&self.direct, ops, warm_op, runs), None);
        self.flush_after("");
        let (_, out) = result?;
        let v: serde_json::Value = serde_json::from_str(out.trim()).map_err(|e| format!("child output: {e}: {out}"))?;
        if warm_op == "challenge" {
            self.check("the bridge", v["response"].as_str().unwrap_or_default())?;
        }
        let mut samples =
            Samples::from_wall(v["warm_ns"].as_array().into_iter().flatten().filter_map(|x| x.as_u64()).collect());
        samples.cpu_ms = v["warm_cpu_ns"].as_u64().map(|ns| ns as f64 / 1e6 / runs.max(1) as f64);
        Ok((samples, Some(per_op(&base, &ten, 10))))
    }

    /// keepassxc-cli ls with a database needing password + TPM key, and one needing the password only.
    pub(crate) fn unlock_rows(&mut self, root: &Path) {
        let g = Group::Unlock;
        if self.opts.no_keepassxc {
            self.notes.push("keepassxc-cli unlock: skipped (--no-keepassxc)".into());
            return;
        }
        let Some((tree, cli, make_db)) = find_keepassxc(root, self.opts.keepassxc_build.as_deref()) else {
            let why = "no KeePassXC fork build with keepassxc-cli and keepassxc-tpm-make-db under build/keepassxc-*/build (tests/keepassxc/build-fork.sh makes one)";
            self.push(g, Kind::Ours, RowId::UnlockWithKey, Err(why.into()));
            return;
        };
        self.notes.push(format!("keepassxc-cli: {}", cli.display()));
        // Run from its build tree, the fork is told where its backend is (it never searches there):
        // the one just built beside this benchmark (the code measured everywhere else; the interface
        // is versioned), else the fork's own copy. Only its processes are told: the bridge rows
        // measured after these keep loading the backend beside this benchmark.
        let backend = std::env::var_os("KEEPASSXC_TPM_BACKEND").map(PathBuf::from).unwrap_or_else(|| {
            let beside =
                std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join("libkeepassxc_tpm_backend.so")));
            beside.filter(|p| p.is_file()).unwrap_or_else(|| tree.join("cargo/release/libkeepassxc_tpm_backend.so"))
        });
        self.notes.push(format!("keepassxc-cli's TPM backend: {}", backend.display()));
        let dir = self.out.join("unlock");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        let tpm_db = dir.join("tpm.kdbx");
        let plain_db = dir.join("password-only.kdbx");
        let serial = format!("1:{HANDLE}");
        let made = (|| {
            let input = format!("{DB_PASSWORD}\n");
            for (db, key) in [(&tpm_db, serial.as_str()), (&plain_db, "none")] {
                run_process(
                    Command::new(&make_db)
                        .arg("--light-kdf")
                        .arg(db)
                        .arg(key)
                        .arg("Bench")
                        .env("TPM2TOOLS_TCTI", &self.direct)
                        .env("KEEPASSXC_TPM_BACKEND", &backend),
                    Some(input.as_bytes()),
                )?;
                self.flush_after("");
            }
            Ok::<(), BenchError>(())
        })();
        if let Err(why) = made {
            self.push(
                g,
                Kind::Ours,
                RowId::UnlockWithKey,
                Err(format!("making the databases with {}: {why}", make_db.display()).into()),
            );
            return;
        }
        let input = format!("{DB_PASSWORD}\n");
        let ls = |db: &Path, tcti: &str, with_key: bool| {
            let mut c = Command::new(&cli);
            c.arg("ls");
            if with_key {
                c.args(["--yubikey", &serial]);
            }
            c.arg(db).env("TPM2TOOLS_TCTI", tcti).env("KEEPASSXC_TPM_BACKEND", &backend);
            c
        };
        let result = (|| {
            let (_, commands) = self.count(|| {
                let (_, out) = run_process(&mut ls(&tpm_db, &self.counted, true), Some(input.as_bytes()))?;
                if out.contains("Bench") {
                    Ok(())
                } else {
                    Err(format!("keepassxc-cli ls printed {out:?}").into())
                }
            })?;
            self.flush_after("keepassxc-cli ls --yubikey (one unlock)");
            let (mut with, mut without) = (Samples::default(), Samples::default());
            let mut leaky_runs = 0;
            for i in 0..self.opts.unlock_runs + 2 {
                let a = run_process(&mut ls(&tpm_db, &self.direct, true), Some(input.as_bytes()));
                leaky_runs += usize::from(self.flush_after(""));
                let (a, out) = a?;
                if !out.contains("Bench") {
                    return Err(format!("keepassxc-cli ls (TPM) printed {out:?}").into());
                }
                let (b, _) = run_process(&mut ls(&plain_db, &self.direct, false), Some(input.as_bytes()))?;
                if i >= 2 {
                    with.push(a);
                    without.push(b);
                }
            }
            if leaky_runs > 0 {
                self.leaky.borrow_mut().push((
                    "keepassxc-cli ls --yubikey (one unlock)".into(),
                    leaky_runs,
                    self.opts.unlock_runs + 2,
                ));
            }
            Ok((with, without, commands))
        })();
        match result {
            Ok((with, without, commands)) => {
                self.push_labelled(
                    g,
                    Kind::Ours,
                    RowId::UnlockWithKey,
                    format!("keepassxc-cli ls --yubikey {serial}, password + TPM key"),
                    Ok((with, Some(commands))),
                );
                self.push(g, Kind::Info, RowId::UnlockPasswordOnly, Ok((without, Some(vec![]))));
            }
            Err(why) => self.push(g, Kind::Ours, RowId::UnlockWithKey, Err(why)),
        }
    }
}

/// The newest fork build that has keepassxc-cli and the make-db helper.
fn find_keepassxc(root: &Path, given: Option<&Path>) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let mut trees: Vec<PathBuf> = match given {
        Some(p) => vec![p.to_owned()],
        None => std::fs::read_dir(root.join("build"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("keepassxc-")))
            .map(|p| p.join("build"))
            .collect(),
    };
    // Newest version first (2.7.10 after 2.7.4).
    trees.sort_by_key(|t| {
        let name = t.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        name.trim_start_matches("keepassxc-").split('.').map(|x| x.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>()
    });
    trees.into_iter().rev().find_map(|tree| {
        let cli = tree.join("src/cli/keepassxc-cli");
        let make_db = tree.join("src/keepassxc-tpm-make-db");
        let works = Command::new(&cli)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (works && make_db.exists()).then_some((tree, cli, make_db))
    })
}
