//! Our paths: in-process (`Tpm::challenge`, `Tpm::list_keys`, `Tpm::open`) and one process per
//! operation through the `tpm-hmac` CLI.

use std::process::Command;
use std::time::{Duration, Instant};

use keepassxc_tpm::{PersistentHandle, Tpm, TpmOptions};
use swtpm_fixture::commands::by_client;
use swtpm_fixture::Abrmd;

use crate::measure::time_loop;
use crate::report::{Group, Kind, RowId};
use crate::stats::Samples;
use crate::{key_handle, Res};

/// How a warm in-process challenge is made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Warm {
    /// The default: the direct path, a new session per challenge (no resource manager).
    Direct,
    /// The direct path with its session kept, as behind a resource manager.
    DirectKept,
    /// tpm2-tss's ESYS computes the session.
    Esys,
    /// No bus encryption (a password session).
    Plain,
}

impl crate::Bench {
    /// (a) warm, in-process: the direct path (the default), with its session kept as behind a
    /// resource manager, the ESYS path, and without bus encryption.
    pub(crate) fn warm_challenge_rows(&mut self, runs: usize) {
        for (way, id) in [
            (Warm::Direct, RowId::Warm),
            (Warm::DirectKept, RowId::WarmKept),
            (Warm::Esys, RowId::WarmEsys),
            (Warm::Plain, RowId::WarmPlain),
        ] {
            let warm = self.warm_challenge(way, runs);
            self.push(Group::Challenge, Kind::Ours, id, warm);
        }
    }

    /// (a): one connection, the key used once, then `runs` timed challenges.
    fn warm_challenge(&self, way: Warm, runs: usize) -> Res<(Samples, Option<Vec<u32>>)> {
        let options = |tcti: &str| {
            TpmOptions::tcti(Some(tcti))
                .with_bus_encryption(way != Warm::Plain)
                .with_direct_path(way != Warm::Esys)
                .with_session_reuse(way == Warm::DirectKept)
        };
        let commands = self
            .count(|| {
                let mut tpm = Tpm::open(&options(&self.counted))?;
                tpm.challenge(key_handle(), &self.seed)?;
                self.log.clear();
                let r = tpm.challenge(key_handle(), &self.seed)?;
                let commands = self.log.commands();
                self.check("Tpm::challenge", &hex::encode(&r[..]))?;
                Ok(commands)
            })?
            .0;
        let mut tpm = Tpm::open(&options(&self.direct))?;
        tpm.challenge(key_handle(), &self.seed)?;
        let seed = self.seed.clone();
        let samples = time_loop(runs, || {
            tpm.challenge(key_handle(), &seed)?;
            Ok(())
        })?;
        Ok((samples, Some(commands)))
    }

    /// (c) The unlock click behind a resource manager: tpm2-abrmd in front of the counting proxy
    /// (so its times include the proxy's hop). The unlock dialog lists the keys (not timed), then
    /// the click's challenge is timed and counted, a new connection per sample. The resource
    /// manager's own ContextSave and ContextLoad around each command, and the FlushContext with
    /// which it follows saving a transient object, are its, not ours: they are left out of the count.
    pub(crate) fn click_behind_resource_manager_row(&mut self) {
        let runs = self.opts.process_runs;
        let mut rows =
            vec![(key_handle(), RowId::ClickBehindResourceManager), (crate::peer_key_handle(), RowId::ClickOldForm)];
        rows.extend(self.file_key.map(|key| (key, RowId::ClickKeyFile)));
        let ids: Vec<RowId> = rows.iter().map(|(_, id)| *id).collect();
        for (id, click) in ids.into_iter().zip(self.click_behind_resource_manager(&rows, runs)) {
            self.push(Group::Challenge, Kind::Ours, id, click);
        }
    }

    /// The clicks of each of `keys`, through one tpm2-abrmd (swtpm serves one connection at a time).
    fn click_behind_resource_manager(
        &self,
        keys: &[(PersistentHandle, RowId)],
        runs: usize,
    ) -> Vec<Res<(Samples, Option<Vec<u32>>)>> {
        for tool in ["tpm2-abrmd", "dbus-daemon"] {
            if !crate::installed(tool) {
                return keys.iter().map(|_| Err(format!("{tool} is not installed").into())).collect();
            }
        }
        let abrmd = Abrmd::start_at(&self.swtpm, &self.counted);
        // The bus is these rows' alone: the paths measured after them do not see it.
        std::env::set_var("DBUS_SESSION_BUS_ADDRESS", abrmd.bus_address());
        let options = TpmOptions::tcti(Some(abrmd.tcti()));
        let clicks = keys.iter().map(|(key, _)| self.clicks(&options, *key, runs)).collect();
        std::env::remove_var("DBUS_SESSION_BUS_ADDRESS");
        clicks
    }

    /// `runs` clicks of `key` through `options`' resource manager (see above).
    fn clicks(&self, options: &TpmOptions, key: PersistentHandle, runs: usize) -> Res<(Samples, Option<Vec<u32>>)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut samples, mut commands) = (Samples::default(), None);
        while samples.len() < runs {
            let mut tpm = match Tpm::open(options) {
                Ok(tpm) => tpm,
                Err(_) if samples.len() == 0 && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                Err(e) => return Err(format!("through tpm2-abrmd: {e}").into()),
            };
            tpm.list_keys()?;
            // tpm2-abrmd saves and flushes a loaded key file's context a little after each answer.
            std::thread::sleep(Duration::from_millis(100));
            self.log.clear();
            let started = Instant::now();
            let response = tpm.challenge(key, &self.seed)?;
            samples.push(started.elapsed());
            std::thread::sleep(Duration::from_millis(100));
            commands.get_or_insert(by_client(&self.log.commands()));
            self.check("the click behind tpm2-abrmd", &hex::encode(&response[..]))?;
        }
        Ok((samples, commands))
    }

    /// (b) cold, new process: the CLI.
    pub(crate) fn cli_challenge_rows(&mut self) {
        let seed_hex = hex::encode(&self.seed);
        let mut rows = vec![(crate::handle_arg(), true, RowId::Cold), (crate::handle_arg(), false, RowId::ColdPlain)];
        rows.extend(self.file_key.map(|key| (key.to_string(), true, RowId::ColdKeyFile)));
        for (handle, encrypted, id) in rows {
            let cli = self.processes(
                id.label(),
                self.opts.process_runs,
                |tcti| {
                    let mut c = Command::new(&self.tpm_hmac);
                    c.args(["--tcti", tcti, "challenge", "--handle", &handle, "--hex", &seed_hex]);
                    if !encrypted {
                        c.arg("--no-bus-encryption");
                    }
                    (c, None)
                },
                true,
            );
            self.push(Group::Challenge, Kind::Ours, id, cli);
        }
    }

    /// Breakdown: `Tpm::open` alone, and with the first challenge (bus encryption on and off).
    pub(crate) fn open_rows(&mut self, runs: usize) {
        let b = Group::Breakdown;
        let open = (|| {
            let commands = self
                .count(|| {
                    Tpm::open(&TpmOptions::tcti(Some(&self.counted)))?;
                    Ok(())
                })?
                .1;
            let samples = time_loop(runs / 10, || {
                Tpm::open(&TpmOptions::tcti(Some(&self.direct)))?;
                Ok(())
            })?;
            Ok((samples, Some(commands)))
        })();
        self.push(b, Kind::Info, RowId::Open, open);
        for (encrypted, id) in [(true, RowId::OpenChallenge), (false, RowId::OpenChallengePlain)] {
            let cold_in = (|| {
                let first = |tcti: &str| -> Res<()> {
                    let mut tpm = Tpm::open(&TpmOptions::tcti(Some(tcti)).with_bus_encryption(encrypted))?;
                    tpm.challenge(key_handle(), &self.seed)?;
                    Ok(())
                };
                let commands = self.count(|| first(&self.counted))?.1;
                let samples = time_loop(runs / 10, || first(&self.direct))?;
                Ok((samples, Some(commands)))
            })();
            self.push(b, Kind::Info, id, cold_in);
        }
    }

    /// Breakdown: the start of a `tpm-hmac` process, without the TPM.
    pub(crate) fn tpm_hmac_start_row(&mut self) {
        let version = self.processes(
            "",
            self.opts.process_runs,
            |_| {
                let mut c = Command::new(&self.tpm_hmac);
                c.arg("--version");
                (c, None)
            },
            false,
        );
        self.push(Group::Breakdown, Kind::Info, RowId::TpmHmacStart, version);
    }

    /// Enumeration: `Tpm::list_keys` in-process (expecting `expect` keys) and `tpm-hmac list`.
    pub(crate) fn ours_list_rows(&mut self, g: Group, expect: usize, runs: usize) {
        let warm = (|| {
            let commands = self
                .count(|| {
                    let mut tpm = Tpm::open(&TpmOptions::tcti(Some(&self.counted)))?;
                    tpm.list_keys()?;
                    self.log.clear();
                    let keys = tpm.list_keys()?;
                    if keys.len() != expect {
                        return Err(format!("list_keys found {} keys, expected {expect}", keys.len()).into());
                    }
                    Ok(())
                })?
                .1;
            let mut tpm = Tpm::open(&TpmOptions::tcti(Some(&self.direct)))?;
            tpm.list_keys()?;
            let samples = time_loop(runs, || {
                tpm.list_keys()?;
                Ok(())
            })?;
            Ok((samples, Some(commands)))
        })();
        self.push(g, Kind::Ours, RowId::ListWarm, warm);
        let cli = self.processes(
            "tpm-hmac list",
            self.opts.process_runs,
            |tcti| {
                let mut c = Command::new(&self.tpm_hmac);
                c.args(["--tcti", tcti, "list", "--json"]);
                (c, None)
            },
            false,
        );
        self.push(g, Kind::Ours, RowId::ListCold, cli);
    }
}
