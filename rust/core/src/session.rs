//! The encrypted session challenges run in. It is salted with the storage key (the SRK at
//! 0x81000001, else the ECC primary from the SRK template) and has the TPM encrypt its response
//! with AES-128-CFB, so the HMAC crosses the bus between TPM and CPU encrypted. (The challenge
//! is not encrypted: it is the KDF seed, stored in clear in the database header.) The storage
//! key's name is compared with the one pinned for the key (`pinned`) before the session is
//! started: a swapped TPM or an interposer answering ReadPublic is refused. Provisioning uses a
//! session of the same kind that encrypts the command instead, so the secret and the PIN's
//! authValue in TPM2_Create never cross the bus in clear.
//!
//! By default the HMAC ends its session (continueSession clear), so nothing stays loaded in the
//! TPM even when the process ends without cleaning up, as KeePassXC's does: a TPM without a
//! resource manager has only three session slots. Long-lived callers that close the connection
//! properly can keep the session (`TpmOptions::session_reuse`), making a warm challenge one command.

use tss_esapi::handles::{ObjectHandle, SessionHandle};
use tss_esapi::interface_types::session_handles::AuthSession;

/// The session for the next challenge.
pub(crate) struct EsysSession {
    pub(crate) handle: AuthSession,
    /// Name (hex) of the storage key that salted it.
    pub(crate) salted_by: String,
}

/// What a session is for, which decides its attributes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionUse {
    /// A challenge: the TPM encrypts its response; kept for the next one only when asked.
    Challenge { keep: bool },
    /// A challenge without bus encryption (a policy session, unsalted).
    Plain,
    /// Create: the command's first parameter (the secret and authValue) is encrypted.
    Provisioning,
}

pub(crate) fn object_of(session: AuthSession) -> ObjectHandle {
    ObjectHandle::from(SessionHandle::from(session))
}
