//! KeePassXC without a usable TPM backend: every call reports "no TPM" with the reason, and
//! nothing crashes. (A process of its own: the backend is loaded once per process.)

use keepassxc_tpm_bridge::testing::{challenge, is_tpm_serial, list_keys, Status};

#[test]
fn a_missing_backend_means_no_tpm_keys() {
    std::env::set_var("KEEPASSXC_TPM_BACKEND", "/nonexistent/libkeepassxc_tpm_backend.so");
    let list = list_keys();
    assert_eq!(list.status, Status::NoTpm);
    assert!(list.keys.is_empty());
    assert!(list.message.contains("/nonexistent/libkeepassxc_tpm_backend.so"), "{}", list.message);
    let mut response = [0u8; 64];
    let result = challenge(0x8100_0100, 1, b"x", &mut response);
    assert_eq!((result.status, result.response_len), (Status::NoTpm, 0));
    assert!(is_tpm_serial(0x8100_0100), "serials are still recognised, so errors name the TPM");
}
