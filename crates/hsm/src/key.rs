//! A key in a token: found by its URI, checked (an EC private key that may sign, with its
//! public key beside it), and used through the module's session pool. Signing hashes in
//! software and asks the token for raw `CKM_ECDSA` over the digest (SoftHSM has no
//! `CKM_ECDSA_SHA256`), then DER-encodes r‖s as X.509 wants.

use std::sync::Arc;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rcgen::SignatureAlgorithm;
use sha2::Digest;

use certmint_core::ca::ExternalKey;
use certmint_core::logsum::Repeated;

use crate::metrics::{ErrorKind, KindLabel, Metrics, ResultLabel, SignResult};
use crate::module::{Fault, Module};
use crate::objects::{find_private, first_object};
use crate::uri::KeyUri;

const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// The curves certmint signs with in a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            Curve::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Curve::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }

    fn digest(self, msg: &[u8]) -> Vec<u8> {
        match self {
            Curve::P256 => sha2::Sha256::digest(msg).to_vec(),
            Curve::P384 => sha2::Sha384::digest(msg).to_vec(),
        }
    }

    fn scalar_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    pub(crate) fn oid(self) -> ObjectIdentifier {
        match self {
            Curve::P256 => P256,
            Curve::P384 => P384,
        }
    }
}

/// A signing key in a token.
pub struct HsmKey {
    module: Arc<Module>,
    uri: Arc<KeyUri>,
    curve: Curve,
    public: Vec<u8>,
    /// The private key's handle and the module generation it was found under: reused
    /// only within that generation (a fault starts a new one, and the key is looked up
    /// again).
    handle: std::sync::Mutex<Option<(u64, ObjectHandle)>>,
    metrics: Arc<Metrics>,
    errors: Arc<Repeated>,
}

impl HsmKey {
    /// Finds the key `uri` names and reads its public key. Does not break the module
    /// when the key is not there: that concerns this key only.
    pub fn open(module: Arc<Module>, uri: KeyUri, metrics: Arc<Metrics>) -> Result<Self, Fault> {
        let (curve, public) = module.one_off(&uri, false, |s| {
            find_private(s, &uri)?;
            public_key(s, &uri)
        })?;
        let uri = Arc::new(uri);
        module.track(&uri);
        let errors = Repeated::new(
            "HSM signature failures",
            tracing::Level::WARN,
            certmint_core::logsum::INTERVAL,
        );
        // One summary line per interval with the count (inside a runtime; the CLI has none).
        errors.spawn_flusher();
        Ok(Self {
            module,
            uri,
            curve,
            public,
            handle: std::sync::Mutex::new(None),
            metrics,
            errors,
        })
    }

    pub fn uri(&self) -> &KeyUri {
        &self.uri
    }

    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The private key's handle under `generation`, looked up once per generation.
    fn handle(&self, session: &Session, generation: u64) -> Result<ObjectHandle, Fault> {
        let cached = *self.handle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, h)) = cached
            && g == generation
        {
            return Ok(h);
        }
        let h = find_private(session, &self.uri)?;
        *self.handle.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, h));
        Ok(h)
    }

    fn count(&self, result: SignResult) {
        self.metrics
            .signatures
            .get_or_create(&ResultLabel { result })
            .inc();
        let (open, busy) = self.module.sessions();
        self.metrics.sessions_open.set(open as i64);
        self.metrics.sessions_busy.set(busy as i64);
    }
}

impl ExternalKey for HsmKey {
    fn public_key_raw(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.curve.algorithm()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        if !self.module.available() {
            self.count(SignResult::Unavailable);
            return Err("the HSM token is unavailable; reconnecting".into());
        }
        let digest = self.curve.digest(msg);
        let signed = self.module.with_session(&self.uri, |s, generation| {
            let key = self.handle(s, generation)?;
            s.sign(&Mechanism::Ecdsa, key, &digest)
                .map_err(|e| Fault::from_ck("signing", e))
        });
        match signed.and_then(|raw| der_signature(&raw, self.curve.scalar_len())) {
            Ok(sig) => {
                self.count(SignResult::Ok);
                Ok(sig)
            }
            Err(e) => {
                self.count(SignResult::Error);
                self.metrics
                    .errors
                    .get_or_create(&KindLabel { kind: e.kind })
                    .inc();
                if self.errors.record(&e.message) {
                    tracing::warn!(key = %self.uri, kind = e.kind.as_str(), error = %e, "HSM signature failed");
                }
                Err(e.message)
            }
        }
    }

    fn available(&self) -> bool {
        self.module.available()
    }

    fn location(&self) -> String {
        self.uri.to_string()
    }
}

/// The curve and the uncompressed point of the public key object beside the private key.
fn public_key(session: &Session, uri: &KeyUri) -> Result<(Curve, Vec<u8>), Fault> {
    let missing = || Fault {
        kind: ErrorKind::KeyMissing,
        message: format!(
            "no public key object {uri} beside the private key; certmint reads it to check that the key matches the certificate"
        ),
    };
    let handle = first_object(session, uri, ObjectClass::PUBLIC_KEY)?.ok_or_else(missing)?;
    let attrs = session
        .get_attributes(handle, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(|e| Fault::from_ck("reading the public key", e))?;
    let (mut params, mut point) = (None, None);
    for a in attrs {
        match a {
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    let unsupported = |what: &str| Fault {
        kind: ErrorKind::KeyMissing,
        message: format!("{uri}: {what}; certmint signs with EC P-256 or P-384 keys in a token"),
    };
    let params = params.ok_or_else(|| unsupported("not an EC key"))?;
    let curve = match ObjectIdentifier::from_der(&params) {
        Ok(oid) if oid == P256 => Curve::P256,
        Ok(oid) if oid == P384 => Curve::P384,
        _ => return Err(unsupported("an unsupported curve")),
    };
    let point = point.ok_or_else(|| unsupported("no EC point"))?;
    // PKCS#11 says DER OCTET STRING; some modules give the bare point.
    let raw = match OctetString::from_der(&point) {
        Ok(o) => o.into_bytes(),
        Err(_) => point,
    };
    if raw.len() != 1 + 2 * curve.scalar_len() || raw[0] != 0x04 {
        return Err(unsupported("an EC point certmint cannot read"));
    }
    Ok((curve, raw))
}

/// r‖s (as the token returns it) → DER `SEQUENCE { INTEGER r, INTEGER s }`.
fn der_signature(raw: &[u8], n: usize) -> Result<Vec<u8>, Fault> {
    let bad = |m: String| Fault {
        kind: ErrorKind::Module,
        message: m,
    };
    if raw.len() != 2 * n {
        return Err(bad(format!(
            "the token returned a {}-byte signature, expected {}",
            raw.len(),
            2 * n
        )));
    }
    let (r, s) = raw.split_at(n);
    let seq = EcdsaSig {
        r: der::asn1::UintRef::new(r).map_err(|e| bad(e.to_string()))?,
        s: der::asn1::UintRef::new(s).map_err(|e| bad(e.to_string()))?,
    };
    seq.to_der().map_err(|e| bad(e.to_string()))
}

#[derive(der::Sequence)]
struct EcdsaSig<'a> {
    r: der::asn1::UintRef<'a>,
    s: der::asn1::UintRef<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_signatures_become_der_that_aws_lc_verifies() {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
            UnparsedPublicKey,
        };
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let kp =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        for msg in [&b"certmint"[..], b"", &[0u8; 1000]] {
            let raw = kp.sign(&rng, msg).unwrap();
            let der = der_signature(raw.as_ref(), 32).unwrap();
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, kp.public_key().as_ref())
                .verify(msg, &der)
                .unwrap();
        }
        assert!(der_signature(&[1; 63], 32).is_err());
    }
}
