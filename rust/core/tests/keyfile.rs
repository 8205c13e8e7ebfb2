//! A TSS2 PRIVATE KEY file holds what the format says (issue 31): an HMAC key imported by tpm2-tools
//! under the SRK from a known secret (`tpm2_import`, HMAC-SHA256), put into a file by [`KeyFile`]
//! and read back from it, is loaded by tpm2-tools (`tpm2_load`, parent the SRK) from the parts the
//! file gave back, and its `tpm2_hmac` answers exactly the HMAC of that secret, computed here in
//! software. A file of another TPM's key does not load.

use hmac::{Hmac, Mac};
use keepassxc_tpm::keyfile::KeyFile;
use swtpm_fixture::{persist_srk, tpm2, Swtpm};

const SECRET: &[u8] = b"0123456789:;<=>?@ABC";

/// Imports SECRET as an HMAC-SHA256 key under the SRK with tpm2-tools: its TPM2B_PUBLIC and
/// TPM2B_PRIVATE.
fn made_by_tpm2_tools(swtpm: &Swtpm) -> (Vec<u8>, Vec<u8>) {
    let tcti = swtpm.tcti();
    let dir = swtpm.dir();
    persist_srk(&tcti, dir);
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    std::fs::write(path("secret.bin"), SECRET).unwrap();
    let (secret, public, private) = (path("secret.bin"), path("made.pub"), path("made.priv"));
    let import = ["tpm2_import", "-Q", "-C", "0x81000001", "-G", "hmac", "-g", "sha256", "-i", &secret];
    tpm2(&tcti, &[&import[..], &["-u", &public, "-r", &private]].concat());
    (std::fs::read(path("made.pub")).unwrap(), std::fs::read(path("made.priv")).unwrap())
}

/// tpm2-tools' HMAC of `message` with the key the file at `key_file` holds, loaded under the SRK.
fn tpm2_tools_hmac(swtpm: &Swtpm, key_file: &std::path::Path, message: &[u8]) -> Result<Vec<u8>, String> {
    let tcti = swtpm.tcti();
    let dir = swtpm.dir();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let key = KeyFile::read(key_file).map_err(|e| e.to_string())?;
    std::fs::write(path("back.pub"), &key.public).unwrap();
    std::fs::write(path("back.priv"), &key.private).unwrap();
    std::fs::write(path("message.bin"), message).unwrap();
    let parent = format!("0x{:08x}", key.parent);
    let load = std::process::Command::new("tpm2_load")
        .args(["-Q", "-C", &parent, "-u", &path("back.pub"), "-r", &path("back.priv"), "-c", &path("back.ctx")])
        .env("TPM2TOOLS_TCTI", &tcti)
        .env("TSS2_LOG", "all+none")
        .output()
        .unwrap();
    if !load.status.success() {
        return Err(String::from_utf8_lossy(&load.stderr).into_owned());
    }
    tpm2(&tcti, &["tpm2_hmac", "-c", &path("back.ctx"), "-g", "sha256", "-o", &path("mac.bin"), &path("message.bin")]);
    tpm2(&tcti, &["tpm2_flushcontext", "-t"]);
    Ok(std::fs::read(path("mac.bin")).unwrap())
}

#[test]
fn tpm2_tools_loads_the_key_from_the_file_and_it_answers_the_secrets_hmac() {
    let swtpm = Swtpm::start();
    let (public, private) = made_by_tpm2_tools(&swtpm);
    let file = swtpm.dir().join("key.tss");
    KeyFile { empty_auth: true, parent: 0x8100_0001, public, private }.write(&file).unwrap();
    assert!(std::fs::read_to_string(&file).unwrap().starts_with("-----BEGIN TSS2 PRIVATE KEY-----\n"));
    for message in [&b""[..], b"x", &[0x5A; 64]] {
        let mut expected = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
        expected.update(message);
        assert_eq!(tpm2_tools_hmac(&swtpm, &file, message).unwrap(), expected.finalize().into_bytes().to_vec());
    }
}

#[test]
fn another_tpms_file_does_not_load() {
    let (first, second) = (Swtpm::start(), Swtpm::start());
    let (public, private) = made_by_tpm2_tools(&first);
    let file = first.dir().join("key.tss");
    KeyFile { empty_auth: true, parent: 0x8100_0001, public, private }.write(&file).unwrap();
    persist_srk(&second.tcti(), second.dir());
    let refused = tpm2_tools_hmac(&second, &file, b"x").unwrap_err();
    assert!(refused.contains("0x") || refused.contains("rror"), "{refused}");
}
