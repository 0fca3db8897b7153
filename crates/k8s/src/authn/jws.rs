//! The one place certmint uses `jsonwebtoken` for Kubernetes token verification: JWK set
//! parsing, JWS header reading and signature checks (RS256 and ES256). Claims are judged
//! elsewhere, so swapping the JWT crate or its crypto backend touches only this file.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;

/// Why a JWS could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwsError {
    /// The bytes are not a compact JWS with a readable header.
    #[error("token is not a JWT")]
    Malformed,
    /// The signature does not verify with the key (or the payload is not JSON claims).
    #[error("token signature does not verify")]
    BadSignature,
    /// The key set document is not a JWKS.
    #[error("key set is not a JWKS document: {0}")]
    KeySet(String),
}

/// The signature algorithms verified locally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

/// What a token's header says about how it was signed.
#[derive(Debug)]
pub struct Header {
    /// `None` when the algorithm is not one verified locally; see `forbidden`.
    pub alg: Option<Alg>,
    /// `none` or an HMAC algorithm: never acceptable for a service-account token.
    pub forbidden: bool,
    pub kid: Option<String>,
}

/// One public key from a JWKS.
pub struct PublicKey {
    pub kid: Option<String>,
    pub alg: Alg,
    key: DecodingKey,
}

/// Reads the protected header of a compact JWS without verifying anything.
pub fn header(token: &str) -> Result<Header, JwsError> {
    let h = jsonwebtoken::decode_header(token).map_err(|_| JwsError::Malformed)?;
    let alg = match h.alg {
        Algorithm::RS256 => Some(Alg::Rs256),
        Algorithm::ES256 => Some(Alg::Es256),
        _ => None,
    };
    let forbidden = matches!(
        h.alg,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    );
    Ok(Header {
        alg,
        forbidden,
        kid: h.kid,
    })
}

/// Parses a JWKS document; keys that cannot sign RS256 or ES256 tokens are skipped.
pub fn parse_jwks(bytes: &[u8], max_keys: usize) -> Result<Vec<PublicKey>, JwsError> {
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| JwsError::KeySet(e.to_string()))?;
    if set.keys.len() > max_keys {
        return Err(JwsError::KeySet(format!("more than {max_keys} keys")));
    }
    let mut out = Vec::new();
    for jwk in &set.keys {
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Alg::Rs256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Alg::Es256,
            _ => continue,
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        out.push(PublicKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    Ok(out)
}

/// Verifies the signature with `key` and returns the payload's claims. No claim is judged
/// here: time, issuer and audience checks are the caller's.
pub fn verify<T: DeserializeOwned>(token: &str, key: &PublicKey) -> Result<T, JwsError> {
    let alg = match key.alg {
        Alg::Rs256 => Algorithm::RS256,
        Alg::Es256 => Algorithm::ES256,
    };
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v.leeway = 0;
    jsonwebtoken::decode::<T>(token, &key.key, &v)
        .map(|d| d.claims)
        .map_err(|_| JwsError::BadSignature)
}
