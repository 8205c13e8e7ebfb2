//! The result table: rows, ratios to the floor and to the peers, targets, Markdown output.

use std::fmt::Write as _;

use crate::stats::Samples;
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
            Group::Unlock => "keepassxc-cli unlock (fork, Argon2id KDF as KeePassXC's default)".into(),
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

pub struct Row {
    pub group: Group,
    pub kind: Kind,
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
