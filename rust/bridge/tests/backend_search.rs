//! Where the backend is loaded from: the first file that exists, and only from a place no one
//! but root or this user can write. Libraries are built on the fly with cc; one whose
//! constructor runs leaves a marker file, so "not loaded" is observed, not assumed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use keepassxc_tpm_bridge::testing::load_from;

/// A shared library whose constructor creates `marker`.
fn planted_library(dir: &Path, marker: &Path) -> PathBuf {
    let source = dir.join("planted.c");
    let library = dir.join("libkeepassxc_tpm_backend.so");
    std::fs::write(
        &source,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void planted(void) {{ FILE* f = fopen(\"{}\", \"w\"); if (f) fclose(f); }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let built = Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&library).arg(&source).status();
    assert!(built.map(|s| s.success()).unwrap_or(false), "a C compiler (cc) is needed for this test");
    std::fs::set_permissions(&library, std::fs::Permissions::from_mode(0o755)).unwrap();
    library
}

fn private_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn error_of(result: Result<impl Sized, String>) -> String {
    match result {
        Err(e) => e,
        Ok(_) => panic!("the library was loaded"),
    }
}

#[test]
fn a_backend_that_fails_to_load_stops_the_search() {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = root.path().join("constructor-ran");
    // The installed backend is broken (say libtss2 was removed): not a library at all here.
    let installed = private_dir(root.path(), "installed").join("libkeepassxc_tpm_backend.so");
    std::fs::write(&installed, b"not an ELF file").unwrap();
    let planted = planted_library(&private_dir(root.path(), "later"), &marker);
    let e = error_of(load_from(&[installed.clone(), planted]));
    assert!(e.contains(&installed.display().to_string()), "{e}");
    assert!(!marker.exists(), "the next candidate's code must not run inside KeePassXC");
}

#[test]
fn a_backend_others_could_have_written_is_refused() {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = root.path().join("constructor-ran");

    let open_dir = private_dir(root.path(), "world-writable");
    let library = planted_library(&open_dir, &marker);
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = error_of(load_from(&[library]));
    assert!(e.contains("writable by group or others"), "{e}");

    let group_file = planted_library(&private_dir(root.path(), "group-file"), &marker);
    std::fs::set_permissions(&group_file, std::fs::Permissions::from_mode(0o775)).unwrap();
    let e = error_of(load_from(&[group_file]));
    assert!(e.contains("writable by group or others"), "{e}");
    assert!(!marker.exists(), "refused before its code ran");

    let missing = root.path().join("nowhere/libkeepassxc_tpm_backend.so");
    let e = error_of(load_from(&[missing]));
    assert!(e.contains("not installed") && e.contains("nowhere"), "{e}");
}

#[test]
fn a_backend_owned_by_another_user_is_refused() {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        eprintln!("SKIP: chown to another user needs root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = root.path().join("constructor-ran");
    let library = planted_library(&private_dir(root.path(), "theirs"), &marker);
    assert!(Command::new("chown").arg("nobody").arg(&library).status().unwrap().success());
    let e = error_of(load_from(&[library]));
    assert!(e.contains("owned by another user"), "{e}");
    assert!(!marker.exists());
}
