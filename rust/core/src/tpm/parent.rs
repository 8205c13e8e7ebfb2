//! The storage parent new keys are created under: the SRK at 0x81000001 when it is a restricted
//! storage key, otherwise a transient ECC P-256 primary from the TCG SRK template (never RSA:
//! creating an RSA primary takes seconds on real TPMs).
//!
//! The storage parent keys are created under: its types first, then the `impl Tpm` that uses them.

use crate::address::{PersistentHandle, SRK_HANDLE};
use crate::error::{Error, Result};
use crate::key::{persistent_handle, Object};
use crate::rc::{self, codes};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::handles::KeyHandle as EsysKeyHandle;
use tss_esapi::handles::ObjectHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::structures::{
    EccPoint, EccScheme, KeyDerivationFunctionScheme, Public, PublicBuilder, PublicEccParametersBuilder,
    SymmetricDefinitionObject,
};

use super::Tpm;

pub(crate) struct Parent {
    pub(crate) handle: EsysKeyHandle,
    /// Created for this operation: flush it when done.
    pub(crate) transient: bool,
}

impl Parent {
    /// A transient primary, not the persistent SRK.
    pub(crate) fn is_transient(&self) -> bool {
        self.transient
    }
}

/// The TCG "H-2" ECC P-256 SRK template (TCG TPM v2.0 Provisioning Guidance, 7.5.1), as
/// systemd and tpm2-tools use it.
pub(crate) fn ecc_srk_template() -> Result<Public> {
    let build = |e: tss_esapi::Error| Error::Wrapper { operation: "building the SRK template", text: e.to_string() };
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(build)?;
    let parameters = PublicEccParametersBuilder::new()
        .with_symmetric(SymmetricDefinitionObject::AES_128_CFB)
        .with_ecc_scheme(EccScheme::Null)
        .with_curve(EccCurve::NistP256)
        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
        .with_is_decryption_key(true)
        .with_restricted(true)
        .build()
        .map_err(build)?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(build)
}

impl Tpm {
    /// The storage key to create keys under or to salt a session with. When `provisioning`,
    /// the SRK is checked to be a storage key, and the standard ECC SRK is persisted at
    /// 0x81000001 when that handle is empty (as systemd does), so later sessions need no
    /// CreatePrimary. On the challenge path nothing is checked or changed: a wrong object
    /// fails StartAuthSession, and the pinned name catches a different one.
    fn storage_parent(&mut self, provisioning: bool) -> Result<Parent> {
        let srk = PersistentHandle::new(SRK_HANDLE)?;
        let found = if provisioning {
            match self.object_at(srk) {
                Ok(Object::Other { storage: true, .. }) => Ok(true),
                // Something else sits at 0x81000001: leave it alone.
                Ok(_) => Ok(false),
                Err(Error::EmptyHandle { .. }) => return self.persist_srk(srk),
                Err(e) => Err(e),
            }
        } else {
            match self.resolve(srk) {
                Ok(_) => Ok(true),
                Err(Error::EmptyHandle { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        };
        if found? {
            let object = self.resolve(srk)?;
            return Ok(Parent { handle: object.into(), transient: false });
        }
        self.transient_primary()
    }

    fn transient_primary(&mut self) -> Result<Parent> {
        let template = ecc_srk_template()?;
        let primary = self.with_password(|tpm| {
            tpm.run("creating the storage primary key", |ctx| {
                ctx.create_primary(Hierarchy::Owner, template.clone(), None, None, None, None)
            })
        })?;
        Ok(Parent { handle: primary.key_handle, transient: true })
    }

    fn persist_srk(&mut self, srk: PersistentHandle) -> Result<Parent> {
        let primary = self.transient_primary()?;
        let persisted = self.with_password(|tpm| {
            tpm.call(|ctx| {
                ctx.evict_control(
                    Provision::Owner,
                    primary.handle.into(),
                    Persistent::Persistent(persistent_handle(srk)?),
                )
            })
        });
        self.release_parent(primary);
        match persisted {
            Ok(object) => {
                self.keys.resolved(srk, object);
                Ok(Parent { handle: object.into(), transient: false })
            }
            // Another program persisted one at the same moment: use it if it is a storage key.
            Err((code, _)) if rc::tpm_code(code) == Some(codes::NV_DEFINED) => match self.object_at(srk)? {
                Object::Other { storage: true, .. } => {
                    let object = self.resolve(srk)?;
                    Ok(Parent { handle: object.into(), transient: false })
                }
                _ => self.transient_primary(),
            },
            Err((_, e)) => Err(rc::classify("persisting the SRK at 0x81000001", e, self.tcti.as_str())),
        }
    }

    /// Runs `f` with the storage parent ([`Tpm::storage_parent`]); a transient one is flushed when
    /// `f` returns, on every path: the parent lives as long as this call.
    pub(crate) fn with_parent<T>(
        &mut self,
        provisioning: bool,
        f: impl FnOnce(&mut Tpm, &Parent) -> Result<T>,
    ) -> Result<T> {
        let parent = self.storage_parent(provisioning)?;
        let result = f(self, &parent);
        self.release_parent(parent);
        result
    }

    fn release_parent(&mut self, parent: Parent) {
        if parent.transient {
            self.flush(ObjectHandle::from(parent.handle));
        }
    }
}
