//! certmint's PKCS#11 layer: CA keys inside an HSM. An issuer Secret (or file) whose key
//! entry holds a PKCS#11 URI instead of PEM names a key in a token; the module and the PIN
//! come from the `hsm:` section. Leaves are signed in the token through a pool of
//! sessions; a token fault answers UNAVAILABLE and turns readiness false until the token
//! is reopened (with backoff). No tonic, no kube.

// A panic on a request path takes the CA down (STYLE.md); tests may unwrap.
#![warn(clippy::unwrap_used)]

mod fault;
pub mod generate;
pub mod key;
pub mod metrics;
pub mod module;
mod objects;
pub mod settings;
pub mod uri;

use std::sync::Arc;

use certmint_core::ca::keys::KeyError;
use certmint_core::ca::{ExternalKey, KeyResolver};

pub use key::{Curve, HsmKey};
pub use metrics::Metrics;
pub use module::{Fault, Module};
pub use settings::HsmConfig;
pub use uri::KeyUri;

/// Resolves `pkcs11:` key references against the configured module.
pub struct HsmKeys {
    module: Arc<Module>,
    metrics: Arc<Metrics>,
}

impl HsmKeys {
    /// Loads and initialises the module (once per process).
    pub fn new(cfg: &HsmConfig, metrics: Arc<Metrics>) -> Result<Self, Fault> {
        let module = Module::get(cfg)?;
        module.count_into(&metrics);
        Ok(Self { module, metrics })
    }

    pub fn module(&self) -> &Arc<Module> {
        &self.module
    }

    /// The key `reference` names, opened.
    pub fn open(&self, reference: &str) -> Result<HsmKey, Fault> {
        let uri = KeyUri::parse(reference.trim()).map_err(|e| Fault {
            kind: metrics::ErrorKind::KeyMissing,
            message: e.to_string(),
        })?;
        HsmKey::open(self.module.clone(), uri, self.metrics.clone())
    }

    /// Generates a key in the token (the ceremony).
    pub fn generate(&self, reference: &str, curve: Curve) -> Result<HsmKey, Fault> {
        let uri = KeyUri::parse(reference.trim()).map_err(|e| Fault {
            kind: metrics::ErrorKind::KeyMissing,
            message: e.to_string(),
        })?;
        generate::generate(self.module.clone(), uri, curve, self.metrics.clone())
    }
}

impl KeyResolver for HsmKeys {
    fn resolve(&self, reference: &str) -> Result<Arc<dyn ExternalKey>, KeyError> {
        self.open(reference)
            .map(|k| Arc::new(k) as Arc<dyn ExternalKey>)
            .map_err(|e| KeyError::External(e.message))
    }
}
