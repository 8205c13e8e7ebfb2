//! The storage parent new keys are created under: the SRK at 0x81000001 when it is a restricted
//! storage key, otherwise a transient ECC P-256 primary from the TCG SRK template (never RSA:
//! creating an RSA primary takes seconds on real TPMs).

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::handles::KeyHandle as EsysKeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{
    EccPoint, EccScheme, KeyDerivationFunctionScheme, Public, PublicBuilder, PublicEccParametersBuilder,
    SymmetricDefinitionObject,
};

use crate::error::{Error, Result};

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
