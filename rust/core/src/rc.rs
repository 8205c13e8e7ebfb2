//! TSS return codes: the raw 32-bit value of tss-esapi's error type, sorted into the [`Error`]
//! variants a person can act on.

#[cfg(unix)]
use tss_esapi::constants::response_code::Tss2ResponseCode;

use crate::error::Error;

/// TPM return codes this crate reacts to (TPM 2.0 Part 2, 6.6). Format-one codes are given
/// without their parameter/handle/session number bits; see [`tpm_code`].
pub(crate) mod codes {
    pub const INITIALIZE: u32 = 0x100;
    pub const AUTH_UNAVAILABLE: u32 = 0x12F;
    pub const NV_SPACE: u32 = 0x14B;
    pub const NV_DEFINED: u32 = 0x14C;
    pub const HANDLE: u32 = 0x08B;
    pub const AUTH_FAIL: u32 = 0x08E;
    pub const BAD_AUTH: u32 = 0x0A2;
    pub const POLICY_FAIL: u32 = 0x09D;
    pub const OBJECT_MEMORY: u32 = 0x902;
    pub const SESSION_MEMORY: u32 = 0x903;
    pub const LOCKOUT: u32 = 0x921;
    pub const RETRY: u32 = 0x922;
    pub const YIELDED: u32 = 0x908;
    pub const TESTING: u32 = 0x90A;
    pub const NV_RATE: u32 = 0x920;
}

const LAYER_MASK: u32 = 0xFFFF_0000;
const TCTI_LAYER: u32 = 10 << 16;
/// TSS2_TCTI_RC_IO_ERROR: the connection failed. Also what the direct path's own transport
/// reports when it cannot reach the TPM, as tpm2-tss's TCTI would.
pub(crate) const TCTI_IO_ERROR: u32 = TCTI_LAYER | 0x0A;
const RESMGR_TPM_LAYER: u32 = 11 << 16;
const RESMGR_LAYER: u32 = 12 << 16;
const ESYS_BAD_SEQUENCE: u32 = (7 << 16) | 7;
/// The response HMAC of a session did not verify (TSS2_BASE_RC_RSP_AUTH_FAILED in ESYS).
const ESYS_RSP_AUTH_FAILED: u32 = (7 << 16) | 27;
/// SAPI found the response malformed (TSS2_BASE_RC_MALFORMED_RESPONSE).
const SYS_MALFORMED_RESPONSE: u32 = (8 << 16) | 17;
/// Any unmarshalling failure (the MU layer): an answer that does not parse.
const MU_LAYER: u32 = 9 << 16;

#[cfg(unix)]
/// The raw TSS2_RC (the public field of tss-esapi's bitfield newtypes).
pub(crate) fn raw(code: &Tss2ResponseCode) -> u32 {
    match code {
        Tss2ResponseCode::Success => 0,
        Tss2ResponseCode::FormatZero(c) => c.0,
        Tss2ResponseCode::FormatOne(c) => c.0,
    }
}

/// The TPM's own code inside `rc` with the handle/parameter/session number removed, or `None`
/// when `rc` comes from a software layer of the TSS.
pub(crate) fn tpm_code(rc: u32) -> Option<u32> {
    let layer = rc & LAYER_MASK;
    if layer != 0 && layer != RESMGR_TPM_LAYER {
        return None;
    }
    let rc = rc & 0xFFFF;
    Some(if rc & 0x80 != 0 { 0x80 | (rc & 0x3F) } else { rc & 0xFFF })
}

/// True when the TPM blames an authorisation session of the command (a format-one code with
/// its session bit: TPM 2.0 Part 2, 6.6.3).
pub(crate) fn is_session_error(rc: u32) -> bool {
    tpm_code(rc).is_some() && rc & 0x80 != 0 && rc & 0x40 == 0 && rc & 0x800 != 0
}

/// True for answers that mean "ask again": the TPM was busy, yielded or self-testing.
pub(crate) fn is_transient(rc: u32) -> bool {
    matches!(tpm_code(rc), Some(codes::RETRY | codes::YIELDED | codes::TESTING | codes::NV_RATE))
}

/// True when the connection itself failed: the ESYS context must be recreated.
pub(crate) fn is_connection_lost(rc: u32) -> bool {
    let layer = rc & LAYER_MASK;
    layer == TCTI_LAYER || layer == RESMGR_LAYER || rc == ESYS_BAD_SEQUENCE
}

/// Turns a tss-esapi error from `operation` into our error, with the variants that need no
/// further context (lockout, PIN, policy, memory, connection). Callers that know more (an
/// empty handle, a wrong object type) match on [`tpm_code`] first.
#[cfg(unix)]
pub(crate) fn classify(operation: &'static str, err: tss_esapi::Error, tcti: &str) -> Error {
    let code = match err {
        tss_esapi::Error::WrapperError(kind) => return Error::Wrapper { operation, text: kind.to_string() },
        tss_esapi::Error::Tss2Error(code) => code,
    };
    classify_code(operation, raw(&code), code.to_string(), tcti)
}

/// [`classify`] for a return code `rc` whose meaning in words is `text` (the direct path's, which
/// has no tss-esapi to describe it).
pub(crate) fn classify_code(operation: &'static str, rc: u32, text: String, tcti: &str) -> Error {
    if rc == ESYS_RSP_AUTH_FAILED || rc == SYS_MALFORMED_RESPONSE || rc & LAYER_MASK == MU_LAYER {
        return Error::BadAnswer { operation, rc };
    }
    if is_connection_lost(rc) {
        return Error::NoTpm { tcti: tcti.to_owned(), detail: format!("{operation}: connection failed, 0x{rc:08X}") };
    }
    match tpm_code(rc) {
        Some(codes::LOCKOUT) => Error::Lockout { rc, interval_seconds: None },
        Some(codes::AUTH_FAIL | codes::BAD_AUTH) => Error::AuthFailed { rc, tries_left: None },
        Some(codes::POLICY_FAIL) => Error::PolicyFailed { rc },
        Some(codes::AUTH_UNAVAILABLE) => Error::PolicyUnknown { rc },
        Some(codes::OBJECT_MEMORY | codes::SESSION_MEMORY) => Error::OutOfMemory { operation, rc },
        Some(codes::INITIALIZE) => Error::NoTpm {
            tcti: tcti.to_owned(),
            detail: format!("the TPM was not started up (TPM2_Startup), 0x{rc:08X}"),
        },
        _ => Error::Tpm { operation, rc, text },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_format_one_numbers() {
        assert_eq!(tpm_code(0x18B), Some(codes::HANDLE));
        assert_eq!(tpm_code(0x98E), Some(codes::AUTH_FAIL));
        assert_eq!(tpm_code(0x2C4), Some(0x084), "TPM_RC_VALUE, parameter 2");
        assert_eq!(tpm_code(0x18A), Some(0x08A), "TPM_RC_TYPE, handle 1");
    }

    #[test]
    fn keeps_format_zero_codes() {
        assert_eq!(tpm_code(0x921), Some(codes::LOCKOUT));
        assert_eq!(tpm_code(0x902), Some(codes::OBJECT_MEMORY));
        assert_eq!(tpm_code(0x14C), Some(codes::NV_DEFINED));
        assert_eq!(tpm_code(0x000B_0921), Some(codes::LOCKOUT), "resource manager passes TPM codes through");
    }

    #[test]
    fn software_layers_are_not_tpm_codes() {
        assert_eq!(tpm_code(0x000A_000A), None);
        assert!(is_connection_lost(0x000A_000A));
        assert!(is_connection_lost(0x0007_0007));
        assert!(!is_connection_lost(0x0000_018B));
    }

    #[cfg(unix)]
    #[test]
    fn raw_code_round_trips() {
        for rc in [0x18Bu32, 0x921, 0x000A_000A, 0x0007_0007, 0x98E] {
            assert_eq!(raw(&Tss2ResponseCode::from(rc)), rc, "0x{rc:08X}");
        }
    }

    #[test]
    fn session_errors_are_told_apart() {
        assert!(is_session_error(0x984), "TPM_RC_VALUE on session 1");
        assert!(is_session_error(0x9A2), "TPM_RC_BAD_AUTH on session 1");
        assert!(!is_session_error(0x18B), "TPM_RC_HANDLE on handle 1");
        assert!(!is_session_error(0x2C4), "TPM_RC_VALUE on parameter 2");
        assert!(!is_session_error(0x921), "format zero");
    }

    #[test]
    fn transient_codes_are_retried() {
        assert!(is_transient(0x922));
        assert!(is_transient(0x908));
        assert!(is_transient(0x90A));
        assert!(!is_transient(0x921));
    }
}
