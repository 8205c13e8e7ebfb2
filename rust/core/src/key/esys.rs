//! The ESYS side of HMAC keys (Linux): their templates as tss-esapi builds them, and telling what
//! sits at a persistent handle from its public area.

use tss_esapi::attributes::{ObjectAttributes, ObjectAttributesBuilder};
use tss_esapi::handles::PersistentTpmHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::structures::{Digest, Public, PublicBuilder};

use super::{Algorithm, KeyInfo, KeySpec, Origin, EMPTY_POLICY};
use crate::address::{PersistentHandle, SRK_HANDLE};
use crate::error::{Error, Result};

/// The object at a persistent handle, described for a person when it is not one of our keys.
pub(crate) enum Object {
    Hmac(KeyInfo),
    /// Anything else; `storage` when it is a restricted decryption key (a possible parent).
    Other {
        what: String,
        storage: bool,
    },
}

/// `policy`: usable only through its authPolicy (PCR binding), not with its authValue.
fn attributes(origin: Origin, policy: bool, pin: bool) -> Result<ObjectAttributes> {
    ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(origin == Origin::Generated)
        .with_user_with_auth(!policy)
        .with_sign_encrypt(true)
        // Without a PIN exempt from dictionary-attack lockout, so unclean shutdowns never lock the
        // user out; with one, wrong guesses count and the TPM rate-limits them.
        .with_no_da(!pin)
        .build()
        .map_err(|e| Error::Wrapper { operation: "building the key attributes", text: e.to_string() })
}

/// The policy a key of `spec` is made with, given its PCR policy's digest (if any): that digest;
/// else, without a PIN, the empty policy (see [`KeyInfo::empty_policy`]); else none (a key with a
/// PIN and no PCRs is authorised with its authValue).
pub(crate) fn key_policy(spec: &KeySpec, pcr_policy: Option<Digest>) -> Result<Option<Digest>> {
    if pcr_policy.is_some() || spec.pin.is_some() || spec.auth_value_form {
        return Ok(pcr_policy);
    }
    Digest::try_from(EMPTY_POLICY.to_vec())
        .map(Some)
        .map_err(|e| Error::Wrapper { operation: "building the key template", text: e.to_string() })
}

/// The template of an HMAC key; `policy` from [`key_policy`].
pub(crate) fn hmac_template(algorithm: Algorithm, origin: Origin, policy: Option<Digest>, pin: bool) -> Result<Public> {
    let builder = match &policy {
        Some(digest) => PublicBuilder::new().with_auth_policy(digest.clone()),
        None => PublicBuilder::new(),
    };
    builder
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes(origin, policy.is_some(), pin)?)
        .with_keyed_hash_parameters(algorithm.parameters())
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(|e| Error::Wrapper { operation: "building the key template", text: e.to_string() })
}

/// Sorts a public area into "one of our HMAC keys" or a description of what it is.
pub(crate) fn describe(handle: PersistentHandle, public: &Public) -> Object {
    let attrs = public.object_attributes();
    let policy = public.auth_policy().value();
    let storage = attrs.restricted() && attrs.decrypt() && !attrs.sign_encrypt();
    let what = match public {
        Public::KeyedHash { parameters, .. } => match Algorithm::of(parameters) {
            Some(algorithm) if attrs.sign_encrypt() && !attrs.decrypt() && !attrs.restricted() => {
                return Object::Hmac(KeyInfo {
                    handle,
                    algorithm,
                    origin: if attrs.sensitive_data_origin() { Origin::Generated } else { Origin::Imported },
                    no_da: attrs.no_da(),
                    policy_bound: !attrs.user_with_auth() && !policy.is_empty() && policy != EMPTY_POLICY,
                    empty_policy: !attrs.user_with_auth() && policy == EMPTY_POLICY,
                    fixed_tpm: attrs.fixed_tpm(),
                    fixed_parent: attrs.fixed_parent(),
                    label: None,
                })
            }
            Some(_) => "a restricted keyed-hash key".to_owned(),
            None if !attrs.sign_encrypt() && !attrs.decrypt() => "a sealed data object".to_owned(),
            None => "a keyed-hash object with an unsupported scheme".to_owned(),
        },
        Public::Rsa { .. } | Public::Ecc { .. } => {
            let alg = if matches!(public, Public::Rsa { .. }) { "RSA" } else { "ECC" };
            if handle.value() >> 16 == 0x8101 {
                format!("an {alg} endorsement key")
            } else if storage && handle.value() == SRK_HANDLE {
                format!("an {alg} storage key, probably the SRK")
            } else if storage {
                format!("an {alg} storage key")
            } else if attrs.sign_encrypt() {
                format!("an {alg} signing key")
            } else {
                format!("an {alg} decryption key")
            }
        }
        Public::SymCipher { .. } => "a symmetric cipher key".to_owned(),
    };
    let storage = storage && matches!(public, Public::Rsa { .. } | Public::Ecc { .. });
    Object::Other { what, storage }
}

pub(crate) fn persistent_handle(handle: PersistentHandle) -> tss_esapi::Result<PersistentTpmHandle> {
    PersistentTpmHandle::new(handle.value())
}
