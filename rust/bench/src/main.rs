//! keepassxc-tpm-bench (issue 5): on ONE private swtpm, for every way of answering a KeePassXC
//! challenge (ours and the peers'), the TPM commands sent (counted by a logging proxy) and the
//! median and p95 wall time (measured on a direct connection, without the proxy's extra hop).
//! Prints a Markdown table with ratios to the raw TPM2_HMAC floor and to tpm2-tools and
//! tpm2-pytss, the targets of issue 24, and writes it to build/bench/results.md.
//!
//! `tests/bench/run.sh` is the one command: it builds this and the `tpm-hmac` CLI in release
//! mode, makes the tpm2-pytss venv, and runs this. No number here is asserted anywhere.
#![forbid(unsafe_code)]

mod child;
mod measure;
mod paths;
mod raw;
mod report;
mod stats;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::{Parser, Subcommand};
use keepassxc_tpm::{yubikey_message, Algorithm, KeySpec, PersistentHandle, Secret, Tpm, TpmOptions};
use swtpm_fixture::{CommandLog, Swtpm};

use measure::last_line;
use report::Row;

/// The key the challenges go to, and the secret imported into it (RFC 2202 test key 1).
const HANDLE: u32 = 0x8100_0100;

/// The benchmark key's twin (the same secret) in the form keys had before the empty policy
/// (authorised by its empty authValue), which tpm2-tools and tpm2-pytss use with a password
/// session as they would any HMAC key; also the old form's click row. It exists only while the
/// challenge rows run: the listing rows count the keys.
const PEER_HANDLE: u32 = 0x8100_0110;

fn peer_key_handle() -> PersistentHandle {
    PersistentHandle::new(PEER_HANDLE).expect("a persistent handle")
}

/// [`PEER_HANDLE`] as the command-line tools take it.
fn peer_handle_arg() -> String {
    format!("0x{PEER_HANDLE:08x}")
}

/// [`HANDLE`] as the command-line tools take it.
fn handle_arg() -> String {
    format!("0x{HANDLE:08x}")
}
const SECRET: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b";
/// Six more keys for the 7-key enumeration.
const MORE_KEYS: std::ops::RangeInclusive<u32> = 0x8100_0101..=0x8100_0106;
/// The database password for the keepassxc-cli unlock.
const DB_PASSWORD: &str = "bench horse";

#[derive(Parser)]
#[command(
    name = "keepassxc-tpm-bench",
    about = "TPM commands and time per KeePassXC challenge: ours vs the raw floor, tpm2-tools and tpm2-pytss (one swtpm)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Subcommand)]
enum Sub {
    /// (internal) one process calling the bridge as KeePassXC does
    #[command(hide = true)]
    ChildBridge(child::Args),
    /// Repeats one of our paths on a private swtpm, for perf/callgrind (`profile --help`)
    Profile(ProfileArgs),
}

#[derive(clap::Args)]
struct ProfileArgs {
    /// warm | warm-plain (bus encryption off) | cold | cold-plain | open | list
    #[arg(long, default_value = "warm")]
    path: String,
    #[arg(long, default_value_t = 1000)]
    n: usize,
}

#[derive(clap::Args, Clone)]
struct Opts {
    /// Few samples, for a smoke test (numbers are not meaningful)
    #[arg(long)]
    quick: bool,
    /// Samples of every in-process path
    #[arg(long, default_value_t = 2000)]
    warm_runs: usize,
    /// Samples of every one-process-per-operation path (tpm-hmac, tpm2-tools, bridge child)
    #[arg(long, default_value_t = 60)]
    process_runs: usize,
    /// Samples of the cold tpm2-pytss path (a Python start each)
    #[arg(long, default_value_t = 30)]
    python_runs: usize,
    /// Samples of each keepassxc-cli unlock (with and without the TPM key, interleaved)
    #[arg(long, default_value_t = 150)]
    unlock_runs: usize,
    /// Python with tpm2-pytss (default: build/bench/venv/bin/python)
    #[arg(long)]
    python: Option<PathBuf>,
    /// The tpm-hmac binary (default: next to this binary)
    #[arg(long)]
    tpm_hmac: Option<PathBuf>,
    /// A KeePassXC fork build tree (default: the newest build/keepassxc-*/build with keepassxc-cli)
    #[arg(long)]
    keepassxc_build: Option<PathBuf>,
    /// Skip the keepassxc-cli unlock
    #[arg(long)]
    no_keepassxc: bool,
    /// Output directory (default: build/bench)
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    if std::env::var_os("TSS2_LOG").is_none() {
        std::env::set_var("TSS2_LOG", "all+none");
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Sub::ChildBridge(args)) => child::run(args).map_err(BenchError::from),
        Some(Sub::Profile(args)) => profile(args),
        None => run(cli.opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keepassxc-tpm-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

/// Why the bench, or one of its paths, failed: the message as printed (a SKIPPED row's reason,
/// or the exit message).
#[derive(Debug)]
struct BenchError(String);

type Res<T> = Result<T, BenchError>;

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for BenchError {
    fn from(message: String) -> BenchError {
        BenchError(message)
    }
}

impl From<&str> for BenchError {
    fn from(message: &str) -> BenchError {
        BenchError(message.to_owned())
    }
}

impl From<keepassxc_tpm::Error> for BenchError {
    fn from(e: keepassxc_tpm::Error) -> BenchError {
        BenchError(e.to_string())
    }
}

impl From<keepassxc_tpm::BadHandle> for BenchError {
    fn from(e: keepassxc_tpm::BadHandle) -> BenchError {
        BenchError(e.to_string())
    }
}

impl From<std::io::Error> for BenchError {
    fn from(e: std::io::Error) -> BenchError {
        BenchError(e.to_string())
    }
}

struct Bench {
    opts: Opts,
    swtpm: Swtpm,
    log: CommandLog,
    /// TCTI straight to swtpm (timing) and through the counting proxy (commands).
    direct: String,
    counted: String,
    seed: Vec<u8>,
    message: Vec<u8>,
    expected: String,
    out: PathBuf,
    tpm_hmac: PathBuf,
    python: Option<PathBuf>,
    /// Why the tpm2-pytss peer cannot run, if it cannot.
    pytss_missing: Option<String>,
    rows: Vec<Row>,
    /// The benchmark key's twin kept in a key file (issue 31), while the challenge rows run.
    file_key: Option<PersistentHandle>,
    notes: Vec<String>,
    loads: Vec<(String, String)>,
    /// Sessions and objects a path's process left loaded in the TPM (flushed by us afterwards).
    leaks: std::cell::RefCell<Vec<(String, raw::Leftovers)>>,
    /// Process runs that failed (path, what happened).
    failures: std::cell::RefCell<Vec<(String, String)>>,
    /// (path, runs that left something loaded, runs)
    leaky: std::cell::RefCell<Vec<(String, usize, usize)>>,
}

/// One path in a loop: `perf record -g --call-graph dwarf keepassxc-tpm-bench profile --path warm`
/// or `valgrind --tool=callgrind --trace-children=no ...`. swtpm runs in its own process.
fn profile(args: ProfileArgs) -> Res<()> {
    let dir = std::env::temp_dir().join(format!("keepassxc-tpm-bench-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::env::set_var(keepassxc_tpm::metadata::METADATA_ENV, dir.join("metadata.json"));
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    swtpm_fixture::persist_srk(&tcti, swtpm.dir());
    let seed: Vec<u8> = (101u8..=132).collect();
    {
        let mut tpm = Tpm::open(&TpmOptions::tcti(Some(&tcti)))?;
        let secret = Secret::from_hex(SECRET)?;
        let spec = KeySpec { handle: Some(key_handle()), algorithm: Algorithm::Sha1, ..KeySpec::default() };
        tpm.import_key(&spec, &secret)?;
    }
    let encrypted = !args.path.ends_with("-plain");
    let t = Instant::now();
    match args.path.trim_end_matches("-plain") {
        "warm" => {
            let mut tpm = Tpm::open(&TpmOptions::tcti(Some(&tcti)).with_bus_encryption(encrypted))?;
            for _ in 0..args.n {
                tpm.challenge(key_handle(), &seed)?;
            }
        }
        "cold" => {
            for _ in 0..args.n {
                let mut tpm = Tpm::open(&TpmOptions::tcti(Some(&tcti)).with_bus_encryption(encrypted))?;
                tpm.challenge(key_handle(), &seed)?;
            }
        }
        "open" => {
            for _ in 0..args.n {
                drop(Tpm::open(&TpmOptions::tcti(Some(&tcti)))?);
            }
        }
        "list" => {
            let mut tpm = Tpm::open(&TpmOptions::tcti(Some(&tcti)))?;
            for _ in 0..args.n {
                tpm.list_keys()?;
            }
        }
        other => return Err(format!("unknown path {other}").into()),
    }
    let per = t.elapsed() / args.n.max(1) as u32;
    eprintln!("{} x {}: {:.3} ms each", args.n, args.path, per.as_secs_f64() * 1e3);
    drop(swtpm);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn run(mut opts: Opts) -> Res<()> {
    if opts.quick {
        opts.warm_runs = opts.warm_runs.min(100);
        opts.process_runs = opts.process_runs.min(8);
        opts.python_runs = opts.python_runs.min(4);
        opts.unlock_runs = opts.unlock_runs.min(3);
    }
    let root = repo_root();
    let out = opts.out.clone().unwrap_or_else(|| root.join("build/bench"));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    // Our keys' records go to a file of the benchmark's own, never to the user's.
    let metadata = out.join("metadata.json");
    let _ = std::fs::remove_file(&metadata);
    std::env::set_var(keepassxc_tpm::metadata::METADATA_ENV, &metadata);
    let tpm_hmac = match &opts.tpm_hmac {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("tpm-hmac"),
    };
    if !tpm_hmac.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p tpm-hmac` (tests/bench/run.sh does)",
            tpm_hmac.display()
        )
        .into());
    }
    let python = opts.python.clone().unwrap_or_else(|| root.join("build/bench/venv/bin/python"));

    eprintln!("starting one swtpm and the command-counting proxy ...");
    let swtpm = Swtpm::start();
    let log = CommandLog::start(swtpm.port());
    // A 32-byte KDF seed as KeePassXC sends it; it does not end in the 0x20 padding byte, so
    // the TPM hashes all 32 bytes (the peers are given exactly those bytes).
    let seed: Vec<u8> = (101u8..=132).collect();
    let message = yubikey_message(&seed)?;
    let mut bench = Bench {
        direct: swtpm.tcti(),
        counted: log.tcti(),
        swtpm,
        log,
        seed,
        message,
        expected: String::new(),
        out,
        tpm_hmac,
        python: None,
        pytss_missing: None,
        rows: Vec::new(),
        file_key: None,
        notes: Vec::new(),
        loads: Vec::new(),
        leaks: Default::default(),
        failures: Default::default(),
        leaky: Default::default(),
        opts,
    };
    bench.load("start");
    bench.provision()?;
    bench.check_python(&python);

    eprintln!("challenge paths ...");
    bench.challenge_rows()?;
    bench.load("after the challenge paths");
    eprintln!("enumeration with 1 key ...");
    bench.list_rows(1)?;
    bench.unlock_rows(&root);
    bench.load("after the unlock");
    bench.provision_more()?;
    eprintln!("enumeration with 7 keys ...");
    bench.list_rows(7)?;
    bench.load("end");

    let text = bench.render();
    println!("{text}");
    let file = bench.out.join("results.md");
    std::fs::write(&file, &text).map_err(|e| format!("{}: {e}", file.display()))?;
    eprintln!("written to {}", file.display());
    Ok(())
}

impl Bench {
    fn load(&mut self, when: &str) {
        let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let avg = avg.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        self.loads.push((when.to_owned(), avg));
    }

    /// SRK at 0x81000001 (as on a provisioned machine) and the benchmark key at 0x81000100.
    fn provision(&mut self) -> Res<()> {
        swtpm_fixture::persist_srk(&self.direct, self.swtpm.dir());
        let mut tpm = Tpm::open(&TpmOptions::tcti(Some(&self.direct)))?;
        let secret = Secret::from_hex(SECRET)?;
        tpm.import_key(
            &KeySpec { handle: Some(PersistentHandle::new(HANDLE)?), algorithm: Algorithm::Sha1, ..KeySpec::default() },
            &secret,
        )?;
        let response = tpm.challenge(key_handle(), &self.seed)?;
        self.expected = hex::encode(&response[..]);
        std::fs::write(self.out.join("message.bin"), &self.message)?;
        Ok(())
    }

    /// The peers' twin of the benchmark key (see [`PEER_HANDLE`]).
    fn provision_twin(&mut self) -> Res<()> {
        let mut tpm = Tpm::open(&TpmOptions::tcti(Some(&self.direct)))?;
        let spec = KeySpec {
            handle: Some(peer_key_handle()),
            algorithm: Algorithm::Sha1,
            auth_value_form: true,
            ..KeySpec::default()
        };
        let twin = tpm.import_key(&spec, &Secret::from_hex(SECRET)?)?;
        if !twin.authorisation_may_count() || hex::encode(&tpm.challenge(twin.handle, &self.seed)?[..]) != self.expected
        {
            return Err("the peers' twin key is not the benchmark key's twin".into());
        }
        Ok(())
    }

    fn delete_twin(&mut self) -> Res<()> {
        let mut tpm = Tpm::open(&TpmOptions::tcti(Some(&self.direct)))?;
        tpm.delete_key(peer_key_handle())?;
        if let Some(key) = self.file_key.take() {
            tpm.delete_file_key(key)?;
        }
        Ok(())
    }

    /// The benchmark key's twin in a key file (its serial in `file_key`), checked to answer alike.
    fn provision_key_file(&mut self) -> Res<()> {
        let mut tpm = Tpm::open(&TpmOptions::tcti(Some(&self.direct)))?;
        let path = self.out.join("twin.tss");
        let _ = std::fs::remove_file(&path);
        let spec = KeySpec { algorithm: Algorithm::Sha1, ..KeySpec::default() };
        let key = tpm.import_file_key(&spec, &Secret::from_hex(SECRET)?, &path)?;
        if hex::encode(&tpm.challenge(key.handle, &self.seed)?[..]) != self.expected {
            return Err("the key file is not the benchmark key's twin".into());
        }
        self.file_key = Some(key.handle);
        Ok(())
    }

    fn provision_more(&mut self) -> Res<()> {
        let mut tpm = Tpm::open(&TpmOptions::tcti(Some(&self.direct)))?;
        for h in MORE_KEYS {
            let spec =
                KeySpec { handle: Some(PersistentHandle::new(h)?), algorithm: Algorithm::Sha1, ..KeySpec::default() };
            let secret = Secret::from_hex(SECRET)?;
            tpm.import_key(&spec, &secret)?;
        }
        Ok(())
    }

    fn check_python(&mut self, python: &Path) {
        if !python.exists() {
            self.pytss_missing = Some(format!(
                "{} does not exist (tests/bench/run.sh makes the venv with `pip install tpm2-pytss`)",
                python.display()
            ));
        } else {
            match Command::new(python)
                .args(["-c", "import tpm2_pytss, importlib.metadata as m; print(m.version('tpm2-pytss'))"])
                .output()
            {
                Ok(o) if o.status.success() => {
                    self.python = Some(python.to_owned());
                    self.notes.push(format!(
                        "tpm2-pytss {} ({})",
                        String::from_utf8_lossy(&o.stdout).trim(),
                        python.display()
                    ));
                }
                Ok(o) => {
                    self.pytss_missing = Some(format!(
                        "`import tpm2_pytss` fails in {}: {}",
                        python.display(),
                        last_line(&String::from_utf8_lossy(&o.stderr))
                    ))
                }
                Err(e) => self.pytss_missing = Some(format!("cannot run {}: {e}", python.display())),
            }
        }
        if let Some(why) = &self.pytss_missing {
            eprintln!("\n*** tpm2-pytss peer SKIPPED: {why} ***\n");
        }
    }
}

/// Whether `program` is on PATH.
fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn key_handle() -> PersistentHandle {
    PersistentHandle::new(HANDLE).expect("a persistent handle")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_messages() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(BenchError::from(io).to_string(), "no such file");
        assert_eq!(BenchError::from(format!("{} runs failed", 3)).to_string(), "3 runs failed");
    }
}
