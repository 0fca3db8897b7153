//! Key generation inside a token, for the CA ceremony: the private key is created on the
//! token as sensitive and not extractable (set explicitly: defaults differ between
//! modules), so it never exists anywhere else.

use std::sync::Arc;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use der::Encode;

use crate::key::{Curve, HsmKey};
use crate::metrics::{ErrorKind, Metrics};
use crate::module::{Fault, Module};
use crate::objects::first_object;
use crate::uri::KeyUri;

/// Generates an EC key pair named as `uri` says (its `object` label and/or `id`) and
/// returns it ready to sign. Refuses when the token already holds a key of that name.
pub fn generate(
    module: Arc<Module>,
    uri: KeyUri,
    curve: Curve,
    metrics: Arc<Metrics>,
) -> Result<HsmKey, Fault> {
    let params = curve.oid().to_der().map_err(|e| Fault {
        kind: ErrorKind::Module,
        message: e.to_string(),
    })?;
    module.one_off(&uri, true, |s| {
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            if first_object(s, &uri, class)?.is_some() {
                return Err(Fault {
                    kind: ErrorKind::Module,
                    message: format!(
                        "the token already holds a key named {uri}; choose another object label or id"
                    ),
                });
            }
        }
        let mut naming = Vec::new();
        if let Some(label) = &uri.object {
            naming.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &uri.id {
            naming.push(Attribute::Id(id.clone()));
        }
        // A CA key signs and does nothing else.
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Derive(false),
            Attribute::EcParams(params.clone()),
        ];
        public.extend(naming.iter().cloned());
        let mut private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
        ];
        private.extend(naming);
        s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
            .map_err(|e| Fault::from_ck("generating the key pair", e))?;
        Ok(())
    })?;
    HsmKey::open(module, uri, metrics)
}
