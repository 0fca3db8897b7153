//! Service-account tokens: the JWTs the fake mints, with the claims kube-apiserver puts in
//! projected and legacy (Secret-based) tokens.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// Adds a `kubernetes.io.node` claim (the node of the bound pod).
    pub node: Option<String>,
    /// Signs with a key the fake does not trust (same claims, unknown `kid`).
    pub foreign_key: bool,
    /// The `kid` the header names instead of the signing key's own.
    pub kid: Option<String>,
    /// Changes the claims after they are built (to make a token fail exactly one check).
    pub edit: Option<fn(&mut Value)>,
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
            node: None,
            foreign_key: false,
            kid: None,
            edit: None,
        }
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
    pub node: Option<ObjectRef>,
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
    if let Some(node) = &spec.node {
        kubernetes["node"] = json!({ "name": node, "uid": stable_uid(&["node", node]) });
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
        let current = self.state().keys.current();
        let key = if spec.foreign_key {
            &self.inner.foreign_key
        } else {
            &current
        };
        let mut claims = projected_claims(spec);
        if let Some(edit) = spec.edit {
            edit(&mut claims);
        }
        key.sign_as(&claims, spec.kid.as_deref())
    }

    /// A legacy Secret-based token: no `aud`, no `exp`, the `kubernetes.io/serviceaccount/*`
    /// claims; valid only for the API server's own audience.
    pub fn mint_legacy_token(&self, ns: &str, sa: &str) -> String {
        self.state().keys.current().sign(&legacy_claims(ns, sa))
    }

    /// The current signing key's public half (SPKI PEM), for local JWT verification.
    pub fn service_account_public_key_pem(&self) -> String {
        self.state().keys.current().public_pem.clone()
    }

    /// Every trusted signing key as a JWKS document (also at `/openid/v1/jwks`).
    pub fn jwks(&self) -> Value {
        self.state().keys.jwks()
    }
}
