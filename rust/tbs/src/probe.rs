//! Which of the TPM commands keepassxc-tpm needs Windows passes on for this user: each sent with an
//! empty parameter area. A command Windows blocks comes back with [`COMMAND_BLOCKED`] from TBS
//! itself; any other answer (the TPM refusing the empty parameters) shows the command reached the
//! TPM. Nothing is created, loaded or changed. (Portable: the tests check the lines on Linux.)

/// The commands keepassxc-tpm's Windows build would send, with their command codes.
pub const COMMANDS: [(u32, &str, &str); 13] = [
    (0x17B, "GetRandom", "nothing (a control: every user may send it)"),
    (0x17A, "GetCapability", "listing keys, the TPM's facts"),
    (0x173, "ReadPublic", "a key's and the SRK's name"),
    (0x131, "CreatePrimary", "the standard storage primary, when there is no SRK"),
    (0x153, "Create", "making a key (file)"),
    (0x157, "Load", "loading a key file"),
    (0x176, "StartAuthSession", "the salted, encrypting session of every challenge"),
    (0x155, "HMAC", "every challenge"),
    (0x165, "FlushContext", "freeing a loaded key or a session"),
    (0x17F, "PolicyPCR", "keys bound to PCRs"),
    (0x16B, "PolicyAuthValue", "keys with a PIN bound to PCRs"),
    (0x120, "EvictControl", "persistent keys (documented as blocked for standard users)"),
    (0x12A, "NV_DefineSpace", "nothing (a control: documented as blocked for standard users)"),
];

/// TBS's answer for a command it blocks for this user.
pub use crate::COMMAND_BLOCKED;

/// A command with the tag TPM_ST_NO_SESSIONS and no parameters.
pub fn empty_command(code: u32) -> [u8; 10] {
    let mut command = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0];
    command[6..].copy_from_slice(&code.to_be_bytes());
    command
}

/// The line for one command, from the response code TBS gave back.
pub fn verdict(code: u32, name: &str, why: &str, rc: u32) -> String {
    if rc == COMMAND_BLOCKED {
        format!("BLOCKED  0x{code:08X} {name}: Windows blocks it for this user (0x{rc:08X}); keepassxc-tpm needs it for {why}")
    } else {
        format!(
            "passed   0x{code:08X} {name}: reached the TPM (it answered 0x{rc:08X}); keepassxc-tpm needs it for {why}"
        )
    }
}

/// Sends each of [`COMMANDS`] in `context`: a line for each (see [`verdict`]) and how many Windows
/// blocked.
#[cfg(windows)]
pub fn run(context: &mut crate::Context) -> (Vec<String>, usize) {
    let mut blocked = 0;
    let lines = COMMANDS
        .iter()
        .map(|&(code, name, why)| match context.submit(&empty_command(code)) {
            Ok(response) if response.len() >= 10 => {
                let rc = u32::from_be_bytes([response[6], response[7], response[8], response[9]]);
                blocked += usize::from(rc == COMMAND_BLOCKED);
                verdict(code, name, why, rc)
            }
            Ok(_) => format!("error    0x{code:08X} {name}: TBS gave back a short answer"),
            Err(rc) => format!("error    0x{code:08X} {name}: TBS failed to pass it on (0x{rc:08X})"),
        })
        .collect();
    (lines, blocked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_headers_alone() {
        assert_eq!(empty_command(0x155), [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x55]);
        let codes: std::collections::HashSet<u32> = COMMANDS.iter().map(|c| c.0).collect();
        assert_eq!(codes.len(), COMMANDS.len(), "each command once");
    }

    #[test]
    fn a_blocked_command_is_named_as_such() {
        assert!(verdict(0x120, "EvictControl", "x", COMMAND_BLOCKED).starts_with("BLOCKED  0x00000120 EvictControl"));
        assert!(verdict(0x155, "HMAC", "x", 0x1D5).starts_with("passed   0x00000155 HMAC"));
    }
}
