//! Service-account tokens: the fake's ES256 signing key and the JWTs it mints, with the
//! claims kube-apiserver puts in projected and legacy (Secret-based) tokens.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::FakeKube;

/// The issuer of projected tokens, which is also the API server's own audience.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The issuer of legacy Secret-based tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// What to put in a projected token. Build with [`TokenSpec::new`], then adjust fields.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    pub namespace: String,
    pub service_account: String,
    pub audiences: Vec<String>,
    /// `exp` − `iat`.
    pub ttl: Duration,
    /// Moves `iat`, `nbf` and `exp` this far into the past (an expired token: age > ttl).
    pub age: Duration,
    /// Adds a `kubernetes.io.pod` claim (a pod-bound token) with this pod name.
    pub pod: Option<String>,
    /// Signs with a key the fake does not trust (same claims, unknown `kid`).
    pub foreign_key: bool,
}

impl TokenSpec {
    pub fn new(namespace: &str, service_account: &str, audiences: &[&str], ttl: Duration) -> Self {
        TokenSpec {
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            ttl,
            age: Duration::ZERO,
            pod: None,
            foreign_key: false,
        }
    }
}

/// An ES256 key pair with its JWT `kid` (base64url SHA-256 of the SPKI, as kube-apiserver).
pub(crate) struct SigningKey {
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub kid: String,
    pub public_pem: String,
    public_raw: Vec<u8>,
}

impl SigningKey {
    pub(crate) fn generate() -> SigningKey {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate ES256 key");
        SigningKey {
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            decoding: DecodingKey::from_ec_der(key.public_key_raw()),
            kid: URL_SAFE_NO_PAD.encode(Sha256::digest(key.subject_public_key_info())),
            public_pem: key.public_key_pem(),
            public_raw: key.public_key_raw().to_vec(),
        }
    }

    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = None;
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign JWT")
    }

    /// The public key as a JWK (what `/openid/v1/jwks` serves).
    pub(crate) fn jwk(&self) -> Value {
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let (x, y) = self.public_raw[1..].split_at(32);
        json!({
            "use": "sig", "kty": "EC", "kid": self.kid, "crv": "P-256", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        })
    }
}

/// The claims of both token flavours (only the fields the fake reads back).
#[derive(Debug, Default, Deserialize, Serialize)]
pub(crate) struct Claims {
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    pub aud: Option<Audience>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Option<Projected>,
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    pub legacy_namespace: Option<String>,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    pub legacy_name: Option<String>,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    pub legacy_uid: Option<String>,
}

/// `aud` may be one string or a list.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub(crate) fn to_vec(&self) -> Vec<String> {
        match self {
            Audience::One(a) => vec![a.clone()],
            Audience::Many(list) => list.clone(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct Projected {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    pub pod: Option<ObjectRef>,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// The claims of a projected token, as the kubelet's TokenRequest would get them.
pub(crate) fn projected_claims(spec: &TokenSpec) -> Value {
    let iat = unix_now() - spec.age.as_secs() as i64;
    let (ns, sa) = (&spec.namespace, &spec.service_account);
    let mut kubernetes = json!({
        "namespace": ns,
        "serviceaccount": { "name": sa, "uid": stable_uid(&["serviceaccount", ns, sa]) },
    });
    if let Some(pod) = &spec.pod {
        kubernetes["pod"] = json!({ "name": pod, "uid": stable_uid(&["pod", ns, pod]) });
    }
    json!({
        "aud": spec.audiences,
        "exp": iat + spec.ttl.as_secs() as i64,
        "iat": iat,
        "nbf": iat,
        "iss": ISSUER,
        "jti": random_uid(),
        "kubernetes.io": kubernetes,
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
    })
}

/// The claims of a legacy token from a `kubernetes.io/service-account-token` Secret.
pub(crate) fn legacy_claims(ns: &str, sa: &str) -> Value {
    json!({
        "iss": LEGACY_ISSUER,
        "kubernetes.io/serviceaccount/namespace": ns,
        "kubernetes.io/serviceaccount/secret.name": format!("{sa}-token"),
        "kubernetes.io/serviceaccount/service-account.name": sa,
        "kubernetes.io/serviceaccount/service-account.uid": stable_uid(&["serviceaccount", ns, sa]),
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
    })
}

pub(crate) fn unix_now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.expect("clock after 1970").as_secs() as i64
}

/// A UUID-shaped id derived from `parts`, so the same service account keeps its uid.
pub(crate) fn stable_uid(parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("/").as_bytes());
    uuid_format(&digest[..16])
}

pub(crate) fn random_uid() -> String {
    uuid_format(&rand::random::<[u8; 16]>())
}

/// Formats 16 bytes as an RFC 4122 version-4 UUID.
fn uuid_format(bytes: &[u8]) -> String {
    let mut bytes = bytes[..16].to_vec();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let parts = [
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32],
    ];
    parts.join("-")
}

impl FakeKube {
    /// A projected token (ES256, signed by the fake's service-account key).
    pub fn mint_token(&self, ns: &str, sa: &str, audiences: &[&str], ttl: Duration) -> String {
        self.mint(&TokenSpec::new(ns, sa, audiences, ttl))
    }

    /// A projected token that expired an hour ago (well past the 60 s leeway).
    pub fn mint_expired_token(&self, ns: &str, sa: &str, audiences: &[&str]) -> String {
        let mut spec = TokenSpec::new(ns, sa, audiences, Duration::from_secs(3600));
        spec.age = Duration::from_secs(7200);
        self.mint(&spec)
    }

    /// A projected token with the right claims, signed by a key the fake does not trust.
    pub fn mint_foreign_token(
        &self,
        ns: &str,
        sa: &str,
        audiences: &[&str],
        ttl: Duration,
    ) -> String {
        let mut spec = TokenSpec::new(ns, sa, audiences, ttl);
        spec.foreign_key = true;
        self.mint(&spec)
    }

    pub fn mint(&self, spec: &TokenSpec) -> String {
        let key = if spec.foreign_key {
            &self.inner.foreign_key
        } else {
            &self.state().key
        };
        key.sign(&projected_claims(spec))
    }

    /// A legacy Secret-based token: no `aud`, no `exp`, the `kubernetes.io/serviceaccount/*`
    /// claims; valid only for the API server's own audience.
    pub fn mint_legacy_token(&self, ns: &str, sa: &str) -> String {
        self.state().key.sign(&legacy_claims(ns, sa))
    }

    /// The service-account signing key's public half (SPKI PEM), for local JWT verification.
    pub fn service_account_public_key_pem(&self) -> String {
        self.state().key.public_pem.clone()
    }

    /// The service-account signing key as a JWKS document (also at `/openid/v1/jwks`).
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.state().key.jwk()] })
    }
}
