// Generates the C++ side of the bridge (header + glue) and compiles the glue into the staticlib.
fn main() {
    cxx_build::bridge("src/lib.rs").std("c++17").compile("keepassxc-tpm-bridge");
    println!("cargo:rerun-if-changed=src/lib.rs");
    // Baked into the loader's search path (src/loader.rs).
    println!("cargo:rerun-if-env-changed=KEEPASSXC_TPM_BACKEND_DIR");
}
