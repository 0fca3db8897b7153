//! Local JWT authentication: verify service-account tokens with configured public keys,
//! for clusters without TokenReview access and for `certmint dev`.

use std::path::Path;

use futures::future::BoxFuture;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use super::{Authenticated, Authenticator, AuthnError, Method, PodRef, Token};
use certmint_core::identity::ServiceAccount;

/// The largest key file accepted (PEM or JWKS).
const MAX_KEY_FILE: u64 = 1 << 20;

/// Why the JWT authenticator could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("reading JWT key file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("JWT key file {path} is not a PEM public key or JWKS: {reason}")]
    Parse { path: String, reason: String },
    #[error("JWT authentication needs at least one key, issuer and audience")]
    Incomplete,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Ec,
    Rsa,
}

struct VerifyKey {
    kid: Option<String>,
    family: Family,
    key: DecodingKey,
}

/// Verifies ES256/ES384/RS256/RS384/RS512 tokens against a fixed key set.
pub struct JwtAuthenticator {
    keys: Vec<VerifyKey>,
    issuers: Vec<String>,
    audiences: Vec<String>,
}

impl JwtAuthenticator {
    /// Loads every key file (PEM `PUBLIC KEY` or a JWKS document).
    pub fn from_files(
        paths: &[impl AsRef<Path>],
        issuers: Vec<String>,
        audiences: Vec<String>,
    ) -> Result<Self, JwtConfigError> {
        let mut keys = Vec::new();
        for p in paths {
            keys.extend(load_keys(p.as_ref())?);
        }
        if keys.is_empty() || issuers.is_empty() || audiences.is_empty() {
            return Err(JwtConfigError::Incomplete);
        }
        Ok(Self {
            keys,
            issuers,
            audiences,
        })
    }

    fn verify(&self, token: &str) -> Result<Authenticated, AuthnError> {
        let header = decode_header(token).map_err(|_| reject("token is not a JWT"))?;
        let family = match header.alg {
            Algorithm::ES256 | Algorithm::ES384 => Family::Ec,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => Family::Rsa,
            _ => return Err(reject("token algorithm not allowed")),
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&self.issuers);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        let mut last = reject("token signed by an unknown key");
        let candidates = self.keys.iter().filter(|k| {
            k.family == family && (k.kid.is_none() || header.kid.is_none() || k.kid == header.kid)
        });
        for k in candidates {
            match decode::<Claims>(token, &k.key, &validation) {
                Ok(data) => {
                    let account = data.claims.service_account()?;
                    let caller = Authenticated::new(account, Method::Jwt, data.claims.pod());
                    return Ok(caller.with_node(data.claims.node()));
                }
                Err(e) => last = classify(e),
            }
        }
        Err(last)
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate<'a>(
        &'a self,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<Authenticated, AuthnError>> {
        Box::pin(async move { self.verify(token.as_str()) })
    }
}

fn reject(reason: &str) -> AuthnError {
    AuthnError::Unauthenticated(reason.to_owned())
}

fn classify(e: jsonwebtoken::errors::Error) -> AuthnError {
    use jsonwebtoken::errors::ErrorKind as K;
    reject(match e.kind() {
        K::ExpiredSignature => "token has expired",
        K::ImmatureSignature => "token is not valid yet",
        K::InvalidAudience => "token audience not accepted",
        K::InvalidIssuer => "token issuer not accepted",
        K::MissingRequiredClaim(_) => "token lacks exp, iss or aud",
        K::InvalidSignature => "token signed by an unknown key",
        _ => "token is malformed",
    })
}

/// The service-account claims of projected and legacy Kubernetes tokens.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(rename = "kubernetes.io")]
    projected: Option<Projected>,
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    legacy_namespace: Option<String>,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    legacy_name: Option<String>,
}

#[derive(Deserialize)]
struct Projected {
    namespace: String,
    serviceaccount: NamedRef,
    pod: Option<PodClaim>,
    node: Option<PodClaim>,
}

#[derive(Deserialize)]
struct NamedRef {
    name: String,
}

#[derive(Deserialize)]
struct PodClaim {
    name: Option<String>,
    uid: Option<String>,
}

impl Claims {
    /// The pod a projected token is bound to, when it says so.
    fn pod(&self) -> Option<PodRef> {
        let pod = self.projected.as_ref()?.pod.as_ref()?;
        PodRef::new(pod.name.as_deref(), pod.uid.as_deref())
    }

    /// The node a projected token's pod runs on, when it says so.
    fn node(&self) -> Option<&str> {
        self.projected.as_ref()?.node.as_ref()?.name.as_deref()
    }

    fn service_account(&self) -> Result<ServiceAccount, AuthnError> {
        let (ns, name) = match (&self.projected, &self.legacy_namespace, &self.legacy_name) {
            (Some(p), _, _) => (p.namespace.as_str(), p.serviceaccount.name.as_str()),
            (None, Some(ns), Some(name)) => (ns.as_str(), name.as_str()),
            _ => return Err(reject("token has no service-account claims")),
        };
        let sa = ServiceAccount::new(ns, name)
            .map_err(|_| reject("token names an invalid service account"))?;
        let expected = format!("system:serviceaccount:{ns}:{name}");
        if self.sub.as_ref().is_some_and(|s| *s != expected) {
            return Err(reject(
                "token subject disagrees with its service-account claims",
            ));
        }
        Ok(sa)
    }
}

fn load_keys(path: &Path) -> Result<Vec<VerifyKey>, JwtConfigError> {
    let shown = path.display().to_string();
    let bytes = certmint_core::fsutil::read_bounded(path, MAX_KEY_FILE).map_err(|source| {
        JwtConfigError::Read {
            path: shown.clone(),
            source,
        }
    })?;
    let parse_err = |reason: String| JwtConfigError::Parse {
        path: shown.clone(),
        reason,
    };
    if bytes.trim_ascii_start().starts_with(b"{") {
        let set: JwkSet = serde_json::from_slice(&bytes).map_err(|e| parse_err(e.to_string()))?;
        return set
            .keys
            .iter()
            .map(|jwk| {
                let family = match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Family::Ec,
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Family::Rsa,
                    _ => return Err(parse_err("only EC and RSA keys are supported".into())),
                };
                let key = DecodingKey::from_jwk(jwk).map_err(|e| parse_err(e.to_string()))?;
                Ok(VerifyKey {
                    kid: jwk.common.key_id.clone(),
                    family,
                    key,
                })
            })
            .collect();
    }
    let blocks = pem::parse_many(&bytes).map_err(|e| parse_err(e.to_string()))?;
    let mut out = Vec::new();
    for block in blocks.iter().filter(|b| b.tag() == "PUBLIC KEY") {
        let pem_text = pem::encode(block);
        let (family, key) = match DecodingKey::from_ec_pem(pem_text.as_bytes()) {
            Ok(k) => (Family::Ec, k),
            Err(_) => (
                Family::Rsa,
                DecodingKey::from_rsa_pem(pem_text.as_bytes())
                    .map_err(|e| parse_err(e.to_string()))?,
            ),
        };
        out.push(VerifyKey {
            kid: None,
            family,
            key,
        });
    }
    if out.is_empty() {
        return Err(parse_err("no PUBLIC KEY block".into()));
    }
    Ok(out)
}
