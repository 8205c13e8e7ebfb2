//! The recovery code: a secret written for people. Crockford base32 in groups of four, with a
//! check group at the end, read back whatever the case and with O/I/L taken for 0/1/1.
//! The check group is the sum of the characters mod 32, which catches every single mistyped
//! character, and 15 bits of SHA-256, which catch almost every other mistake; a typo is
//! refused instead of silently making a different key.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of the check group.
const CHECK_CHARS: usize = 4;

/// The code for `secret`, e.g. `61GK-4CSM-…-W3ZD`.
pub fn encode(secret: &[u8]) -> Zeroizing<String> {
    let mut chars = base32(secret);
    let check = check_group(&chars, secret);
    chars.extend(check);
    let mut out = Zeroizing::new(String::with_capacity(chars.len() * 5 / 4));
    for (i, c) in chars.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(*c as char);
    }
    out
}

/// The secret bytes of a recovery code: 20 for HMAC-SHA1 (9 groups), 32 for HMAC-SHA256 (14).
pub fn decode(code: &str) -> Result<Zeroizing<Vec<u8>>> {
    let bad = |reason: &str| Error::BadSecret { reason: format!("recovery code: {reason}") };
    let mut values = Zeroizing::new(Vec::with_capacity(code.len()));
    for c in code.chars().filter(|c| !matches!(c, '-' | ' ' | '\t' | '\n' | '\r')) {
        let c = match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        let value = ALPHABET
            .iter()
            .position(|&a| a as char == c)
            .ok_or_else(|| bad(&format!("'{c}' is not a code character")))?;
        values.push(value as u8);
    }
    let len = match values.len().checked_sub(CHECK_CHARS) {
        Some(32) => 20,
        Some(52) => 32,
        _ => return Err(bad("wrong length; a code has 9 groups (HMAC-SHA1) or 14 groups (HMAC-SHA256)")),
    };
    let body: Zeroizing<Vec<u8>> =
        Zeroizing::new(values[..values.len() - CHECK_CHARS].iter().map(|&v| ALPHABET[v as usize]).collect());
    let mut bytes = Zeroizing::new(Vec::with_capacity(len));
    let (mut acc, mut bits) = (0u32, 0);
    for &v in &values[..values.len() - CHECK_CHARS] {
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 || bytes.len() != len {
        return Err(bad("the last group is not one this tool writes: a character was mistyped"));
    }
    let got: Vec<u8> = values[values.len() - CHECK_CHARS..].iter().map(|&v| ALPHABET[v as usize]).collect();
    if check_group(&body, &bytes) != got {
        return Err(bad("the checksum does not match: a character was mistyped"));
    }
    Ok(bytes)
}

/// The sum of the body's character values mod 32, then 15 bits of SHA-256 over the secret.
fn check_group(body: &[u8], secret: &[u8]) -> Vec<u8> {
    let value = |c: &u8| ALPHABET.iter().position(|a| a == c).unwrap_or(0);
    let sum = body.iter().map(value).sum::<usize>() % 32;
    let mut group = vec![ALPHABET[sum]];
    group.extend(base32(&Sha256::digest(secret)[..2]).iter().copied().take(CHECK_CHARS - 1));
    group
}

/// The secret's base32 digits (zeroized on drop: they are the secret too).
fn base32(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    // Room for the check group too, so that appending it never leaves a copy behind.
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() * 8 / 5 + 1 + CHECK_CHARS));
    let (mut acc, mut bits) = (0u32, 0);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize]);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_sha1_and_sha256_secrets() {
        for len in [20usize, 32] {
            let secret: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(97).wrapping_add(13)).collect();
            let code = encode(&secret);
            assert_eq!(code.split('-').count(), if len == 20 { 9 } else { 14 }, "{}", code.as_str());
            assert_eq!(&decode(&code).unwrap()[..], &secret[..]);
            assert_eq!(&decode(&code.to_lowercase().replace('0', "o").replace('-', " ")).unwrap()[..], &secret[..]);
        }
    }

    #[test]
    fn a_typo_is_caught() {
        let code = encode(&[0x5a; 20]);
        for i in (0..code.len()).filter(|i| code.as_bytes()[*i] != b'-') {
            let mut typo = code.as_bytes().to_vec();
            typo[i] = if typo[i] == b'7' { b'8' } else { b'7' };
            let typo = String::from_utf8(typo).unwrap();
            assert!(decode(&typo).is_err(), "{typo}");
        }
        assert!(decode("ABCD-EFGH").is_err());
        assert!(decode(&format!("{}-U", code.as_str())).is_err());
    }
}
