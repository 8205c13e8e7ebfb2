//! TPM 2.0 command codes (TPM 2.0 Part 2, 6.5.2) of the commands the tests and the benchmark
//! count on the wire, with their names for reports.

pub const EVICT_CONTROL: u32 = 0x120;
pub const CREATE_PRIMARY: u32 = 0x131;
pub const SELF_TEST: u32 = 0x143;
pub const STARTUP: u32 = 0x144;
pub const CREATE: u32 = 0x153;
pub const HMAC: u32 = 0x155;
pub const LOAD: u32 = 0x157;
pub const CONTEXT_LOAD: u32 = 0x161;
pub const CONTEXT_SAVE: u32 = 0x162;
pub const FLUSH_CONTEXT: u32 = 0x165;
pub const LOAD_EXTERNAL: u32 = 0x167;
pub const POLICY_AUTH_VALUE: u32 = 0x16B;
pub const READ_PUBLIC: u32 = 0x173;
pub const START_AUTH_SESSION: u32 = 0x176;
pub const GET_CAPABILITY: u32 = 0x17A;
pub const GET_RANDOM: u32 = 0x17B;
pub const PCR_READ: u32 = 0x17E;
pub const TEST_PARMS: u32 = 0x18A;
pub const POLICY_PASSWORD: u32 = 0x18C;

const NAMES: [(u32, &str); 19] = [
    (EVICT_CONTROL, "EvictControl"),
    (CREATE_PRIMARY, "CreatePrimary"),
    (SELF_TEST, "SelfTest"),
    (STARTUP, "Startup"),
    (CREATE, "Create"),
    (HMAC, "HMAC"),
    (LOAD, "Load"),
    (CONTEXT_LOAD, "ContextLoad"),
    (CONTEXT_SAVE, "ContextSave"),
    (FLUSH_CONTEXT, "FlushContext"),
    (LOAD_EXTERNAL, "LoadExternal"),
    (POLICY_AUTH_VALUE, "PolicyAuthValue"),
    (READ_PUBLIC, "ReadPublic"),
    (START_AUTH_SESSION, "StartAuthSession"),
    (GET_CAPABILITY, "GetCapability"),
    (GET_RANDOM, "GetRandom"),
    (PCR_READ, "PCR_Read"),
    (TEST_PARMS, "TestParms"),
    (POLICY_PASSWORD, "PolicyPassword"),
];

/// A readable name for a command code (`0x1AB` for one not listed).
pub fn command_name(code: u32) -> String {
    NAMES.iter().find(|(c, _)| *c == code).map_or_else(|| format!("0x{code:03X}"), |(_, name)| (*name).to_owned())
}

/// What a client sent, among the commands a resource manager passed on: without the manager's own
/// ContextLoad and ContextSave around each command, and the FlushContext with which it follows a
/// ContextSave of a transient object (tpm2-abrmd does that after each command, a little after the
/// client has its answer: wait a moment before a log's window opens).
pub fn by_client(sent: &[u32]) -> Vec<u32> {
    let mut client = Vec::new();
    for (i, &code) in sent.iter().enumerate() {
        match code {
            CONTEXT_LOAD | CONTEXT_SAVE => {}
            FLUSH_CONTEXT if i > 0 && sent[i - 1] == CONTEXT_SAVE => {}
            code => client.push(code),
        }
    }
    client
}
