//! The user's key files (keys kept in TSS2 PRIVATE KEY files, not persistent handles): each one's
//! record checked against the TPM (loaded, its name against the record's), and its file looked for
//! where it was written.

use std::path::Path;

use keepassxc_tpm::PersistentHandle;

use super::Finding;
use crate::CliWorker;

/// One finding per key file of the record file; none when there are none.
pub fn check(worker: &CliWorker) -> Vec<Finding> {
    let checked = worker.run(|tpm| {
        // From the record file alone: the persistent keys were listed already.
        let content = tpm.metadata().content()?;
        let files: Vec<PersistentHandle> = content
            .keys
            .keys()
            .filter_map(|name| name.parse::<PersistentHandle>().ok())
            .filter(|h| h.is_file_key())
            .collect();
        Ok(files
            .into_iter()
            .map(|handle| {
                let path = content.record(handle).ok().flatten().and_then(|r| r.key_file);
                (handle, tpm.key_info(handle).map(|_| ()), path)
            })
            .collect::<Vec<_>>())
    });
    let Ok(checked) = checked else { return Vec::new() };
    checked
        .into_iter()
        .map(|(handle, loaded, path)| {
            let shown = path.clone().unwrap_or_else(|| "(no path recorded)".to_owned());
            match loaded {
                Err(e) => Finding::problem(
                    "key-file",
                    format!("the key file {handle} ({shown}) does not load: {}", e.explained()),
                    format!(
                        "it belongs to another TPM or the TPM was cleared: restore it from its recovery code \
                         (tpm-hmac import --key-file NEW.tss), then tpm-hmac delete --handle {handle}"
                    ),
                ),
                Ok(()) if path.as_deref().is_some_and(|p| !Path::new(p).exists()) => Finding::note(
                    "key-file",
                    format!(
                        "the key file {handle} loads from its record, but its file {shown} is gone (the record is \
                         enough here; `tpm-hmac delete --handle {handle}` removes the key)"
                    ),
                ),
                Ok(()) => {
                    Finding::ok("key-file", format!("the key file {handle} ({shown}) loads and matches its record"))
                }
            }
        })
        .collect()
}
