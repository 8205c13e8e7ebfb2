//! A backend of another interface version is refused with a message, not called.

use std::process::Command;

use keepassxc_tpm_bridge::testing::{list_keys, Status};

#[test]
fn a_backend_of_another_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("future.c");
    let library = dir.path().join("libkeepassxc_tpm_backend.so");
    // A backend from the future: it exports the version symbol, with a version we do not speak.
    std::fs::write(&source, "unsigned keepassxc_tpm_backend_abi_version(void) { return 999; }\n").unwrap();
    let built = Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&library).arg(&source).status();
    assert!(built.map(|s| s.success()).unwrap_or(false), "a C compiler (cc) is needed for this test");
    // Only a library no one else could have written is loaded at all.
    std::fs::set_permissions(&library, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::env::set_var("KEEPASSXC_TPM_BACKEND", &library);
    let list = list_keys();
    assert_eq!(list.status, Status::NoTpm);
    assert!(
        list.message.contains("interface version 999")
            && list.message.contains(&format!("needs version {}", keepassxc_tpm_abi::ABI_VERSION)),
        "{}",
        list.message
    );
}
