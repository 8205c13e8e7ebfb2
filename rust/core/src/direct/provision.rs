//! Making and loading key files on the direct path (the Windows build has no other): the standard
//! storage primary (TPM2_CreatePrimary), a new HMAC key under a storage parent (TPM2_Create, its
//! secret encrypted on the way in by a salted session with the decrypt attribute), and loading a
//! key file's key (TPM2_Load). Parents and the owner hierarchy have the empty authValue and are
//! exempt from dictionary-attack counting, so CreatePrimary and Load use the empty password: no
//! secret crosses the bus, and a wrong parent costs no try. Every answer is parsed to its end.

use hmac::Mac;

use super::crypto::{self, DIGEST};
use super::wire::{self, DECRYPT};
use super::{Direct, Fallback, SaltKey};

/// A loaded object: its handle, and the name the TPM gave for it.
pub(crate) struct Loaded {
    pub(crate) handle: u32,
    pub(crate) name: Vec<u8>,
}

/// A storage primary made by TPM2_CreatePrimary: loaded, its public area and name.
pub(crate) struct Primary {
    pub(crate) loaded: Loaded,
    pub(crate) public: Vec<u8>,
}

impl Direct {
    /// Sends a command and parses its one-session answer with `handles` output handles; the
    /// answer's parameters are copied out.
    fn exchange(&mut self, command: &[u8], handles: usize) -> Result<(Vec<u32>, Vec<u8>), Fallback> {
        let response = self.transport.send(command).map_err(Fallback::from)?;
        let answer =
            wire::session_answer(&response, handles).map_err(|_| Fallback::Refused(0))?.map_err(Fallback::Refused)?;
        Ok((answer.handles, answer.parameters.to_vec()))
    }

    /// TPM2_CreatePrimary in the owner hierarchy from `template`; the name the TPM gives must be
    /// the hash of the public area it returns.
    pub(crate) fn create_primary(&mut self, template: &[u8]) -> Result<Primary, Fallback> {
        let parameters = wire::create_parameters(&wire::sensitive_create(&[]), template);
        let command = wire::with_empty_password(wire::CC_CREATE_PRIMARY, wire::RH_OWNER, &parameters);
        let (handles, parameters) = self.exchange(&command, 1)?;
        let handle = handles[0];
        let checked = wire::primary_created(&parameters).ok().and_then(|(public, name)| {
            let computed = crate::key::public::sha256_name(public)?;
            (computed == name).then(|| (public.to_vec(), computed))
        });
        let Some((public, name)) = checked else {
            self.flush(handle);
            return Err(Fallback::Refused(0));
        };
        Ok(Primary { loaded: Loaded { handle, name }, public })
    }

    /// TPM2_Load of a key's wrapped `private` part and `public` area (each without its TPM2B size)
    /// under `parent`.
    pub(crate) fn load(&mut self, parent: u32, private: &[u8], public: &[u8]) -> Result<Loaded, Fallback> {
        let command = wire::with_empty_password(wire::CC_LOAD, parent, &wire::load_parameters(private, public));
        let (handles, parameters) = self.exchange(&command, 1)?;
        match wire::loaded_name(&parameters) {
            Ok(name) => Ok(Loaded { handle: handles[0], name: name.to_vec() }),
            Err(_) => {
                self.flush(handles[0]);
                Err(Fallback::Refused(0))
            }
        }
    }

    /// TPM2_Create of an object from `template` under `parent` (name `parent_name`, the storage
    /// key `salt_key`), with `data` as its secret (empty: the TPM generates one). The session is
    /// salted to the parent and encrypts the secret; it ends with the command. Returns the wrapped
    /// private part and the public area (without their TPM2B sizes).
    pub(crate) fn create(
        &mut self,
        parent_name: &[u8],
        salt_key: &SaltKey,
        data: &[u8],
        template: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), Fallback> {
        let session = self.start_session(salt_key, false)?;
        let nonce_caller = crypto::nonce(DIGEST).ok_or(Fallback::Refused(0))?;
        let mut sensitive = wire::sensitive_create(data);
        crypto::encrypt_command(&session.key, &[], &nonce_caller, &session.nonce_tpm, &mut sensitive);
        let parameters = wire::create_parameters(&sensitive, template);
        let cp_hash = crypto::parameter_hash(&[&wire::CC_CREATE.to_be_bytes(), parent_name, &parameters]);
        let auth = crypto::session_hmac(&session.key, &[], &cp_hash, &nonce_caller, &session.nonce_tpm, DECRYPT)
            .finalize()
            .into_bytes();
        let command = wire::authorised(
            wire::CC_CREATE,
            salt_key.handle,
            session.handle,
            &nonce_caller,
            DECRYPT,
            &auth,
            &parameters,
        );
        let response = self.transport.send(&command).map_err(Fallback::from)?;
        let answer = match wire::session_answer(&response, 0) {
            Ok(Ok(answer)) => answer,
            Ok(Err(code)) => {
                // A failed command leaves its session loaded.
                self.flush(session.handle);
                return Err(Fallback::Refused(code));
            }
            Err(_) => return Err(Fallback::Refused(0)),
        };
        // The answer is the TPM's only if its HMAC is the session's.
        let rp_hash = crypto::parameter_hash(&[&0u32.to_be_bytes(), &wire::CC_CREATE.to_be_bytes(), answer.parameters]);
        crypto::session_hmac(&session.key, &[], &rp_hash, answer.nonce_tpm, &nonce_caller, answer.attributes)
            .verify_slice(answer.hmac)
            .map_err(|_| Fallback::Refused(0))?;
        let (private, public) = wire::key_created(answer.parameters).map_err(|_| Fallback::Refused(0))?;
        Ok((private.to_vec(), public.to_vec()))
    }

    /// TPM2_FlushContext of an object or session this connection loaded.
    pub(crate) fn flush(&mut self, handle: u32) {
        let _ = self.transport.send(&wire::flush_context(handle));
    }
}
