//! The report: rows and their identifiers, ratios to the floor and to the peers, the Markdown
//! table, the targets judged from the rows, and the whole text (`Bench::render`).

use std::fmt::Write as _;
use std::process::Command;

use crate::stats::Samples;
use crate::{repo_root, Bench};
use swtpm_fixture::commands::command_name;

/// What a row measures; ratios compare rows of the same group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// One challenge (KeePassXC's 32-byte KDF seed) → one HMAC-SHA1 response.
    Challenge,
    /// Listing the HMAC keys with `n` of them stored (plus the SRK).
    List(usize),
    /// Opening a database with keepassxc-cli.
    Unlock,
    /// Pieces of a path, for finding where the time goes.
    Breakdown,
}

impl Group {
    pub fn title(self) -> String {
        match self {
            Group::Challenge => "Challenge (32-byte KDF seed → HMAC-SHA1)".into(),
            Group::List(n) => format!("Enumeration, {n} HMAC key(s) + SRK stored"),
            Group::Unlock => {
                "keepassxc-cli unlock (fork; Argon2id lightened to 1 round of 1 MiB in both databases, so that \
                 the key's few milliseconds are not lost in the KDF's own variation)"
                    .into()
            }
            Group::Breakdown => "Where the time goes (pieces of the paths above)".into(),
        }
    }
}

/// Which peer a row is, for the ratio columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Floor,
    Ours,
    Tpm2Tools,
    PytssWarm,
    PytssCold,
    Info,
}

/// Which row it is: what the targets look rows up by. The enumeration rows are there once per
/// number of keys stored (their groups differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowId {
    // Challenge
    Floor,
    FloorTcti,
    Warm,
    WarmKept,
    WarmEsys,
    WarmPlain,
    Cold,
    ColdPlain,
    BridgeWarm,
    BridgeCold,
    BridgeUnlockSequence,
    ClickBehindResourceManager,
    ClickOldForm,
    ClickKeyFile,
    ColdKeyFile,
    Tpm2Hmac,
    PytssWarm,
    PytssCold,
    // Breakdown
    PytssImport,
    PytssEsapi,
    PytssFirstHmac,
    Open,
    OpenChallenge,
    OpenChallengePlain,
    TpmHmacStart,
    BridgeStart,
    Tpm2HmacStart,
    // Enumeration
    ListWarm,
    ListCold,
    BridgeListWarm,
    BridgeListCold,
    Tpm2ToolsList,
    PytssListWarm,
    PytssListCold,
    // keepassxc-cli unlock
    UnlockWithKey,
    UnlockPasswordOnly,
}

impl RowId {
    /// The row's label in the table (a measured [`RowId::UnlockWithKey`] row names the key's serial too).
    pub fn label(self) -> &'static str {
        match self {
            RowId::Floor => "floor: raw TPM2_HMAC bytes on an open socket (password session: the authValue-form twin)",
            RowId::FloorTcti => {
                "floor as tpm2-tss's swtpm TCTI sends it: raw TPM2_HMAC on a new TCP connection per command"
            }
            RowId::Warm => "(a) ours, warm, in-process: `Tpm::challenge` (bus encryption on, the default)",
            RowId::WarmKept => "(a) ours, warm, in-process, session kept (as behind /dev/tpmrm0 or tpm2-abrmd)",
            RowId::WarmEsys => "(a) ours, warm, in-process, ESYS path (tpm2-tss computes the session)",
            RowId::WarmPlain => "(a) ours, warm, in-process, bus encryption off (an unsalted session)",
            RowId::Cold => "(b) ours, cold, new process: `tpm-hmac challenge` (bus encryption on)",
            RowId::ColdPlain => {
                "(b) ours, cold, new process, bus encryption off: `tpm-hmac --no-bus-encryption challenge`"
            }
            RowId::BridgeWarm => "(c) KeePassXC path, warm: bridge `challenge` (cached connection)",
            RowId::BridgeCold => "(c) KeePassXC path, cold, new process: bridge `challenge`",
            RowId::BridgeUnlockSequence => {
                "(c) KeePassXC unlock sequence, new process: bridge `list_keys` + `challenge`"
            }
            RowId::ClickBehindResourceManager => {
                "(c) the unlock click behind a resource manager: `Tpm::challenge` after `list_keys`, through tpm2-abrmd and the counting proxy"
            }
            RowId::ClickOldForm => {
                "(c) the same click for a key of the form made before the empty policy (its authValue): its name is read first"
            }
            RowId::ClickKeyFile => {
                "(c) the same click for a key kept in a file (loaded when the keys were listed; the resource manager keeps it)"
            }
            RowId::ColdKeyFile => {
                "(b) ours, cold, new process, a key kept in a file: `tpm-hmac challenge --handle <its serial>` (TPM2_Load first)"
            }
            RowId::Tpm2Hmac => {
                "tpm2-tools: `tpm2_hmac -c 0x81000110` (the key's authValue-form twin), one process per challenge"
            }
            RowId::PytssWarm => "tpm2-pytss warm: ESAPI kept, `hmac` with the password session",
            RowId::PytssCold => "tpm2-pytss cold: new Python process per challenge",
            RowId::PytssImport => "tpm2-pytss cold: `import tpm2_pytss` (inside the process)",
            RowId::PytssEsapi => "tpm2-pytss cold: `ESAPI(tcti)`",
            RowId::PytssFirstHmac => "tpm2-pytss cold: first HMAC (tr_from_tpmpublic + hmac)",
            RowId::Open => "`Tpm::open` alone (the TPM reached; the ESYS context opens at its first use), in-process",
            RowId::OpenChallenge => "`Tpm::open` + first `challenge`, bus encryption on, in-process",
            RowId::OpenChallengePlain => "`Tpm::open` + first `challenge`, bus encryption off, in-process",
            RowId::TpmHmacStart => "process start only: `tpm-hmac --version` (no TPM)",
            RowId::BridgeStart => "process start only: bridge child with no call",
            RowId::Tpm2HmacStart => "process start only: `tpm2_hmac --version` (no TPM)",
            RowId::ListWarm => "ours, warm, in-process: `Tpm::list_keys`",
            RowId::ListCold => "ours, cold, new process: `tpm-hmac list --json`",
            RowId::BridgeListWarm => "KeePassXC path, warm: bridge `list_keys` (cached connection)",
            RowId::BridgeListCold => "KeePassXC path, cold, new process: bridge `list_keys`",
            RowId::Tpm2ToolsList => "tpm2-tools: `tpm2_getcap handles-persistent` + `tpm2_readpublic` per handle",
            RowId::PytssListWarm => "tpm2-pytss warm: `get_capability` + `read_public` per handle",
            RowId::PytssListCold => "tpm2-pytss cold: new Python process per listing",
            RowId::UnlockWithKey => "keepassxc-cli ls, password + TPM key",
            RowId::UnlockPasswordOnly => "keepassxc-cli ls, password only (same KDF settings)",
        }
    }
}

pub struct Row {
    pub group: Group,
    pub kind: Kind,
    pub id: RowId,
    pub label: String,
    /// TPM command codes of one operation (None: not counted).
    pub commands: Option<Vec<u32>>,
    pub samples: Samples,
    /// Why the row has no numbers.
    pub skipped: Option<String>,
}

impl Row {
    pub fn median(&self) -> Option<f64> {
        (self.skipped.is_none() && self.samples.len() > 0).then(|| self.samples.median_ms())
    }
}

/// "2: ReadPublic, HMAC"; long lists grouped: "10: GetCapability, 9×ReadPublic".
pub fn format_commands(codes: &[u32]) -> String {
    if codes.is_empty() {
        return "0".into();
    }
    let mut groups: Vec<(u32, usize)> = Vec::new();
    for &c in codes {
        match groups.iter_mut().find(|(code, _)| *code == c) {
            Some((_, n)) => *n += 1,
            None => groups.push((c, 1)),
        }
    }
    let names: Vec<String> = if codes.len() <= 4 {
        codes.iter().map(|&c| command_name(c)).collect()
    } else {
        groups.iter().map(|&(c, n)| if n == 1 { command_name(c) } else { format!("{n}×{}", command_name(c)) }).collect()
    };
    format!("{}: {}", codes.len(), names.join(", "))
}

fn ratio(value: Option<f64>, base: Option<f64>) -> String {
    match (value, base) {
        (Some(v), Some(b)) if b > 0.0 => {
            let r = v / b;
            if r >= 10.0 {
                format!("{r:.0}×")
            } else {
                format!("{r:.2}×")
            }
        }
        _ => "–".into(),
    }
}

fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

/// The Markdown table of all rows, grouped.
pub fn table(rows: &[Row]) -> String {
    let floor = rows.iter().find(|r| r.kind == Kind::Floor).and_then(Row::median);
    let mut out = String::new();
    let mut groups: Vec<Group> = Vec::new();
    for r in rows {
        if !groups.contains(&r.group) {
            groups.push(r.group);
        }
    }
    for g in groups {
        let peer = |k: Kind| rows.iter().find(|r| r.group == g && r.kind == k).and_then(Row::median);
        let (tools, warm, cold) = (peer(Kind::Tpm2Tools), peer(Kind::PytssWarm), peer(Kind::PytssCold));
        let _ = writeln!(out, "\n**{}**\n", g.title());
        let _ = writeln!(
            out,
            "| path | TPM commands | n | median ms | p95 ms | client CPU ms | × floor | × tpm2-tools | × pytss warm | × pytss cold |"
        );
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|");
        for r in rows.iter().filter(|r| r.group == g) {
            let cmds = r.commands.as_deref().map(format_commands).unwrap_or_else(|| "–".into());
            if let Some(why) = &r.skipped {
                let _ = writeln!(out, "| {} | {cmds} | 0 | SKIPPED: {why} | | | | | | |", r.label);
                continue;
            }
            let m = r.median();
            let is_peer = |k: Kind| r.kind == k;
            let _ = writeln!(
                out,
                "| {} | {cmds} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.label,
                r.samples.len(),
                ms(r.samples.median_ms()),
                ms(r.samples.p95_ms()),
                r.samples.cpu_ms.map_or_else(|| "–".into(), ms),
                if r.kind == Kind::Floor { "1×".into() } else { ratio(m, floor) },
                if is_peer(Kind::Tpm2Tools) { "(peer)".into() } else { ratio(m, tools) },
                if is_peer(Kind::PytssWarm) { "(peer)".into() } else { ratio(m, warm) },
                if is_peer(Kind::PytssCold) { "(peer)".into() } else { ratio(m, cold) },
            );
        }
    }
    out
}

impl Bench {
    /// Row `id`, when it has numbers.
    fn measured(&self, id: RowId) -> Option<&Row> {
        self.rows.iter().find(|r| r.id == id && r.skipped.is_none())
    }

    /// Row `id` of group `group` (the enumeration rows are there once per number of keys).
    fn measured_in(&self, group: Group, id: RowId) -> Option<&Row> {
        self.rows.iter().find(|r| r.group == group && r.id == id && r.skipped.is_none())
    }

    /// The targets of issue 24, each judged from the rows (reported, not asserted).
    fn targets(&self) -> String {
        let mut t = String::from("| target | measured | met? |\n|---|---|---|\n");
        let yes = |b: bool| if b { "yes" } else { "**no**" };
        let med = |id: RowId| self.measured(id).and_then(Row::median);
        let commands = |r: &Row| r.commands.as_deref().map(format_commands).unwrap_or_default();
        let not_measured = |what: &str| format!("| {what} | not measured | – |\n");
        // 1. The unlock click is the HMAC alone behind a resource manager.
        let what = "1. the unlock click costs 1 TPM command (the HMAC) behind a resource manager";
        t += &match self.measured(RowId::ClickBehindResourceManager) {
            Some(r) => {
                let one_hmac = r.commands.as_deref() == Some(&[swtpm_fixture::commands::HMAC][..]);
                format!("| {what} | {} (tpm2-abrmd) | {} |\n", commands(r), yes(one_hmac))
            }
            None => not_measured(what),
        };
        let what = "1b. the same click for a key made before the empty policy: ReadPublic (its name), then the HMAC";
        t += &match self.measured(RowId::ClickOldForm) {
            Some(r) => {
                use swtpm_fixture::commands::{HMAC, READ_PUBLIC};
                let expected = r.commands.as_deref() == Some(&[READ_PUBLIC, HMAC][..]);
                format!("| {what} | {} (tpm2-abrmd) | {} |\n", commands(r), yes(expected))
            }
            None => not_measured(what),
        };
        let what = "1c. the same click for a key kept in a file: the HMAC alone (it was loaded at listing)";
        t += &match self.measured(RowId::ClickKeyFile) {
            Some(r) => {
                let one_hmac = r.commands.as_deref() == Some(&[swtpm_fixture::commands::HMAC][..]);
                format!("| {what} | {} (tpm2-abrmd) | {} |\n", commands(r), yes(one_hmac))
            }
            None => not_measured(what),
        };
        // 2. Listing: 1 GetCapability + 1 ReadPublic per persistent handle; warm ≤ pytss warm;
        //    cold ≤ 0.1× tpm2-tools.
        let list = Group::List(7);
        let what = "2. listing 7 keys + SRK: 1 GetCapability + 1 ReadPublic per persistent handle";
        t += &match self.measured_in(list, RowId::ListWarm) {
            Some(r) => {
                use swtpm_fixture::commands::{GET_CAPABILITY, READ_PUBLIC};
                let expected: Vec<u32> = std::iter::once(GET_CAPABILITY).chain([READ_PUBLIC; 8]).collect();
                format!("| {what} | {} | {} |\n", commands(r), yes(r.commands.as_ref() == Some(&expected)))
            }
            None => not_measured(what),
        };
        let median_in = |id: RowId| self.measured_in(list, id).and_then(Row::median);
        let what = "2. warm listing of 7 keys ≤ tpm2-pytss warm";
        t += &match (median_in(RowId::ListWarm), median_in(RowId::PytssListWarm)) {
            (Some(ours), Some(pytss)) => {
                format!("| {what} | {ours:.3} ms vs {pytss:.3} ms | {} |\n", yes(ours <= pytss))
            }
            _ => not_measured(what),
        };
        let what = "2. cold `tpm-hmac list` of 7 keys ≤ 0.1× tpm2-tools";
        t += &match (median_in(RowId::ListCold), median_in(RowId::Tpm2ToolsList)) {
            (Some(ours), Some(tools)) => {
                let r = ours / tools;
                format!("| {what} | {ours:.2} ms vs {tools:.2} ms = {r:.2}× | {} |\n", yes(r <= 0.1))
            }
            _ => not_measured(what),
        };
        // 3. A TPM key adds ≤ 3 ms to a keepassxc-cli unlock; the driver's own work ≤ 2 ms.
        let what = "3. a TPM key adds ≤ 3 ms to a keepassxc-cli unlock (paired median)";
        t += &match (self.measured(RowId::UnlockWithKey), self.measured(RowId::UnlockPasswordOnly)) {
            (Some(with), Some(without)) if with.samples.len() == without.samples.len() => {
                // The runs alternate (with, without): the median of the pairwise differences.
                let mut diffs: Vec<i64> =
                    with.samples.wall.iter().zip(&without.samples.wall).map(|(x, y)| *x as i64 - *y as i64).collect();
                diffs.sort_unstable();
                let q = |f: f64| diffs[((f * diffs.len() as f64) as usize).min(diffs.len() - 1)] as f64 / 1e6;
                format!(
                    "| {what} | medians {:.1} − {:.1} ms; paired differences: median {:+.1} ms, quartiles {:+.1} … {:+.1} ms | {} |\n",
                    with.samples.median_ms(),
                    without.samples.median_ms(),
                    q(0.5),
                    q(0.25),
                    q(0.75),
                    yes(q(0.5) <= 3.0)
                )
            }
            _ => {
                let why =
                    self.rows.iter().find(|r| r.group == Group::Unlock).and_then(|r| r.skipped.clone()).unwrap_or_else(
                        || if self.opts.no_keepassxc { "skipped (--no-keepassxc)".into() } else { "no result".into() },
                    );
                format!("| {what} | not measured: {why} | – |\n")
            }
        };
        let what =
            "3. the driver's own work at unlock (bridge list + challenge in a new process, minus process start) ≤ 2 ms";
        t += &match (med(RowId::BridgeUnlockSequence), med(RowId::BridgeStart)) {
            (Some(seq), Some(start)) => {
                format!("| {what} | {seq:.2} − {start:.2} = {:.2} ms | {} |\n", seq - start, yes(seq - start <= 2.0))
            }
            _ => not_measured(what),
        };
        // 4. Cold `tpm-hmac challenge` ≤ 0.35× tpm2_hmac, the name check included.
        let what = "4. cold `tpm-hmac challenge` (bus encryption on, name check included) ≤ 0.35× `tpm2_hmac`";
        t += &match (self.measured(RowId::Cold), med(RowId::Tpm2Hmac)) {
            (Some(cold), Some(tools)) => {
                let ours = cold.samples.median_ms();
                let r = ours / tools;
                format!(
                    "| {what} | {ours:.2} ms vs {tools:.2} ms = {r:.2}× ({}) | {} |\n",
                    commands(cold),
                    yes(r <= 0.35)
                )
            }
            _ => not_measured(what),
        };
        // 5. Client CPU of a new salted session ≤ 0.3 ms (the warm direct path starts one per challenge).
        let what = "5. client CPU of a new salted session (a warm challenge that starts one) ≤ 0.3 ms";
        t += &match self.measured(RowId::Warm).and_then(|r| r.samples.cpu_ms) {
            Some(cpu) => format!("| {what} | {cpu:.3} ms | {} |\n", yes(cpu <= 0.3)),
            None => not_measured(what),
        };
        t
    }

    /// The whole report: machine, versions, the table, the targets, failures and leftovers.
    pub(crate) fn render(&self) -> String {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
            .unwrap_or_else(|| "unknown".into());
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let version = |cmd: &str, args: &[&str]| {
            Command::new(cmd)
                .args(args)
                .output()
                .map(|o| {
                    let s = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
                    s.lines().next().unwrap_or("").trim().to_owned()
                })
                .unwrap_or_else(|_| "not installed".into())
        };
        let mut s = String::new();
        s += "# keepassxc-tpm benchmark\n\n";
        s += &format!(
            "Machine: {nproc} CPU(s), {cpu}, Linux {}. Load average (1, 5, 15 min): {}.\n\n",
            kernel.trim(),
            self.loads.iter().map(|(w, l)| format!("{w} {l}")).collect::<Vec<_>>().join("; ")
        );
        s += &format!(
            "TPM: swtpm ({}) over loopback TCP, no resource manager. tpm2-tools: {}. tpm2-tss: {}. {}.\n\n",
            version("swtpm", &["--version"]),
            version("tpm2_hmac", &["--version"]),
            version("pkg-config", &["--modversion", "tss2-esys"]),
            self.notes.join("; ")
        );
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(repo_root())
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        let dirty = git(&["status", "--porcelain", "--", "rust/core", "rust/cli", "rust/bridge"]);
        s += &format!(
            "Code: commit {}{}.\n\n",
            git(&["rev-parse", "--short", "HEAD"]),
            if dirty.is_empty() {
                String::new()
            } else {
                " plus uncommitted changes in rust/core, rust/cli or rust/bridge".into()
            }
        );
        s += "Times are wall-clock per operation, measured on a direct connection to swtpm; TPM commands are counted \
              in a separate run through a logging proxy (per operation for warm paths, per process for the \
              new-process paths). Client CPU is the CPU time of our process (all threads) per operation; for \
              new-process paths the whole process, start-up included. Ratios compare medians. The floor is one TPM2_HMAC command built by hand and \
              sent on an already open socket: swtpm's own HMAC time plus one loopback round trip.\n";
        s += &table(&self.rows);
        s += "\n**Targets (issue 24; reported, not asserted)**\n\n";
        s += &self.targets();
        let failures = self.failures.borrow();
        if !failures.is_empty() {
            s += "\n**Runs that failed** (not timed):\n\n";
            for (what, how) in failures.iter() {
                s += &format!("- {what}: {how}\n");
            }
        }
        let leaks = self.leaks.borrow();
        let leaky = self.leaky.borrow();
        if !leaks.is_empty() || !leaky.is_empty() {
            s += "\n**Left loaded in the TPM by one process** (swtpm has no resource manager; /dev/tpmrm0 and tpm2-abrmd \
                  flush these when the process exits, /dev/tpm0 does not). The benchmark flushes them after every run.\n\n";
            let mut labels: Vec<&str> = leaks.iter().map(|(w, _)| w.as_str()).collect();
            labels.extend(leaky.iter().map(|(w, _, _)| w.as_str()).filter(|w| !leaks.iter().any(|(l, _)| l == w)));
            for what in labels {
                let counted = leaks
                    .iter()
                    .find(|(w, _)| w == what)
                    .map(|(_, l)| format!("counted run: {} session(s), {} transient object(s)", l.sessions, l.objects))
                    .unwrap_or_else(|| "counted run: nothing".into());
                let share = leaky
                    .iter()
                    .find(|(w, _, _)| w == what)
                    .map(|(_, k, n)| format!("; {k} of {n} timed runs left something"))
                    .unwrap_or_else(|| "; timed runs: nothing".into());
                s += &format!("- {what}: {counted}{share}\n");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lists() {
        assert_eq!(format_commands(&[0x173, 0x155]), "2: ReadPublic, HMAC");
        assert_eq!(format_commands(&[0x17A, 0x173, 0x173, 0x173, 0x173]), "5: GetCapability, 4×ReadPublic");
        assert_eq!(format_commands(&[]), "0");
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(Some(1.0), Some(4.0)), "0.25×");
        assert_eq!(ratio(Some(40.0), Some(2.0)), "20×");
        assert_eq!(ratio(None, Some(2.0)), "–");
    }
}
