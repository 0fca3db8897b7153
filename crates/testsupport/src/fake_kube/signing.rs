//! The fake's service-account signing keys: ES256 (P-256) or RS256 (RSA 2048) key pairs
//! with kube-apiserver's `kid` (base64url SHA-256 of the SPKI), and the ring of keys the
//! server trusts and publishes at `/openid/v1/jwks` (the newest one signs).

use std::sync::{Arc, RwLock};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The JWS algorithm of a signing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    Es256,
    Rs256,
}

/// A key pair with its JWT `kid`.
pub(crate) struct SigningKey {
    pub alg: KeyAlg,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub kid: String,
    pub public_pem: String,
    jwk: Value,
}

impl SigningKey {
    pub(crate) fn generate() -> SigningKey {
        Self::generate_for(KeyAlg::Es256)
    }

    pub(crate) fn generate_for(alg: KeyAlg) -> SigningKey {
        match alg {
            KeyAlg::Es256 => Self::ec(),
            KeyAlg::Rs256 => Self::rsa(),
        }
    }

    fn ec() -> SigningKey {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate ES256 key");
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(key.subject_public_key_info()));
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let (x, y) = key.public_key_raw()[1..].split_at(32);
        let jwk = json!({
            "use": "sig", "kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        });
        SigningKey {
            alg: KeyAlg::Es256,
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            decoding: DecodingKey::from_ec_der(key.public_key_raw()),
            kid,
            public_pem: key.public_key_pem(),
            jwk,
        }
    }

    fn rsa() -> SigningKey {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .expect("generate RSA 2048 key");
        let public = private.to_public_key();
        let spki = public.to_public_key_der().expect("RSA SPKI");
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(spki.as_bytes()));
        let (n, e) = (
            URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        );
        let der = private.to_pkcs1_der().expect("RSA PKCS#1");
        SigningKey {
            alg: KeyAlg::Rs256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            decoding: DecodingKey::from_rsa_components(&n, &e).expect("RSA public key"),
            jwk: json!({ "use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256", "n": n, "e": e }),
            kid,
            public_pem: public
                .to_public_key_pem(LineEnding::LF)
                .expect("RSA public PEM"),
        }
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        match self.alg {
            KeyAlg::Es256 => Algorithm::ES256,
            KeyAlg::Rs256 => Algorithm::RS256,
        }
    }

    /// Signs `claims` with this key, the header naming `kid` (its own unless overridden).
    pub(crate) fn sign_as(&self, claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(self.algorithm());
        header.typ = None;
        header.kid = Some(kid.unwrap_or(&self.kid).to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign JWT")
    }

    pub(crate) fn sign(&self, claims: &Value) -> String {
        self.sign_as(claims, None)
    }

    /// The public key as a JWK (what `/openid/v1/jwks` serves).
    pub(crate) fn jwk(&self) -> Value {
        self.jwk.clone()
    }
}

/// The keys the server trusts; the first one signs new tokens.
pub(crate) struct KeyRing(RwLock<Vec<Arc<SigningKey>>>);

impl KeyRing {
    pub(crate) fn new(first: SigningKey) -> KeyRing {
        KeyRing(RwLock::new(vec![Arc::new(first)]))
    }

    pub(crate) fn current(&self) -> Arc<SigningKey> {
        self.0.read().unwrap_or_else(|e| e.into_inner())[0].clone()
    }

    pub(crate) fn all(&self) -> Vec<Arc<SigningKey>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `key` first; older keys stay trusted (and published) unless `retire_old`.
    pub(crate) fn rotate(&self, key: SigningKey, retire_old: bool) {
        let mut keys = self.0.write().unwrap_or_else(|e| e.into_inner());
        if retire_old {
            keys.clear();
        }
        keys.insert(0, Arc::new(key));
    }

    pub(crate) fn jwks(&self) -> Value {
        let keys: Vec<Value> = self.all().iter().map(|k| k.jwk()).collect();
        json!({ "keys": keys })
    }
}
