//! Binding a key to the boot state: a PolicyPCR policy over SHA-256 PCRs, followed by
//! PolicyAuthValue when the key has a PIN. The policy digest is computed by the TPM in a trial
//! session at provisioning, from the PCR values of that moment; a challenge replays the policy
//! in a policy session, which only matches while the PCRs do (and only with the right PIN).

/// PCRs a key may be bound to (the 24 of a PC TPM's SHA-256 bank).
pub const MAX_PCR: u8 = 23;

/// Parses `7`, `0,2,7` or `7+16` into a sorted list of PCR indices.
pub fn parse_pcrs(text: &str) -> std::result::Result<Vec<u8>, String> {
    let mut pcrs = Vec::new();
    for part in text.split([',', '+', ' ']).filter(|p| !p.is_empty()) {
        match part.parse::<u8>() {
            Ok(n) if n <= MAX_PCR => pcrs.push(n),
            _ => return Err(format!("\"{part}\" is not a PCR index 0-{MAX_PCR}")),
        }
    }
    if pcrs.is_empty() {
        return Err("no PCR given; e.g. --pcrs 7 (Secure Boot state)".to_owned());
    }
    pcrs.sort_unstable();
    pcrs.dedup();
    Ok(pcrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pcr_lists() {
        assert_eq!(parse_pcrs("7").unwrap(), vec![7]);
        assert_eq!(parse_pcrs("16,7+7 0").unwrap(), vec![0, 7, 16]);
        assert!(parse_pcrs("24").is_err());
        assert!(parse_pcrs("").is_err());
        assert!(parse_pcrs("seven").is_err());
    }
}
