//! Audit records: one JSON line each, built with serde from typed structs. Every record
//! carries its place in a chain (`seq`, `chain`, `prev`); `kind` says what it records.
//! Records never hold a token, a CSR or key bytes.

use std::net::SocketAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::authn::Authenticated;
use crate::ca::cert::hex;
use crate::certify::Certified;

/// `prev` of a chain's first record when nothing precedes it.
pub const NO_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of an audit file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// Position in the chain; the `start` record is 0.
    pub seq: u64,
    /// When the writer sealed the record (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The certmint replica that wrote it.
    pub replica: String,
    /// The chain's id, named by its `start` record.
    pub chain: String,
    /// Hex SHA-256 of the previous line's exact bytes (without its newline).
    pub prev: String,
    #[serde(flatten)]
    pub body: Body,
}

/// What a record says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    Start(Start),
    Certify(Box<CertifyRecord>),
    Checkpoint(Checkpoint),
}

/// The first record of a chain. `prev` links it to the file's last line when a restarted
/// replica continues a file (then `after` names the chain it follows).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Start {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// One Certify outcome, issued or refused.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertifyRecord {
    /// The wire API (`linkerd` or `istio`).
    pub api: String,
    /// The identity the caller asked for (bounded by the pipeline's size check).
    pub identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Who the token proved, when authentication got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<Caller>,
    /// The gRPC code answered (`OK`, `PERMISSION_DENIED`, …).
    pub code: String,
    /// certmint's reason (`issued` on success).
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<CertFields>,
}

/// The authenticated caller.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Caller {
    pub namespace: String,
    pub service_account: String,
    /// `tokenreview`, `cache`, `local`, `local_fallback` or `jwt`.
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The node the token says the caller runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The issued certificate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertFields {
    /// Hex, as `openssl x509 -serial` shows it (lower case).
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// SHA-256 of the leaf's DER.
    pub sha256: String,
    /// SHA-256 of the leaf's SubjectPublicKeyInfo.
    pub spki_sha256: String,
    pub issuer_serial: String,
    /// SHA-256 of the issuer certificate's DER.
    pub issuer_sha256: String,
}

/// A checkpoint: the chain head and count, signed when an audit key is configured.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    /// Hex SHA-256 of the previous line (equal to `prev`).
    pub head: String,
    /// Records in the chain before this one (equal to `seq`).
    pub count: u64,
    /// `ecdsa-p256-sha256`, `ed25519`, or `none`.
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Base64 signature over [`super::checkpoint::signed_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// Written on a clean shutdown: nothing follows in this chain.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last: bool,
}

/// The requested identity as recorded: a refused request may carry anything up to the
/// message size limit, so at most 253 bytes are kept (then `…`).
fn bounded(identity: &str) -> String {
    const MAX: usize = crate::certify::MAX_IDENTITY_BYTES;
    if identity.len() <= MAX {
        return identity.to_owned();
    }
    let mut end = MAX;
    while !identity.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &identity[..end])
}

/// RFC 3339 with milliseconds, UTC.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl Caller {
    pub fn from_authenticated(a: &Authenticated) -> Self {
        Self {
            namespace: a.account.namespace().to_owned(),
            service_account: a.account.name().to_owned(),
            method: a.method.as_str().to_owned(),
            pod_name: a.pod.as_ref().map(|p| p.name.clone()),
            pod_uid: a.pod.as_ref().map(|p| p.uid.clone()),
            node: a.node.clone(),
        }
    }
}

impl CertFields {
    pub fn from_certified(c: &Certified) -> Self {
        Self {
            serial: hex(&c.serial),
            not_before: timestamp(c.not_before),
            not_after: timestamp(c.not_after),
            sha256: hex(&crate::ca::cert::sha256(&c.leaf)),
            spki_sha256: hex(&c.spki_sha256),
            issuer_serial: c.issuer_serial.clone(),
            issuer_sha256: c.issuer_sha256.clone(),
        }
    }
}

impl CertifyRecord {
    /// The record of one Certify call (`code` is the gRPC code's canonical name); `cert`
    /// is `None` for a refusal.
    pub fn new(
        api: &str,
        identity: &str,
        peer: Option<SocketAddr>,
        caller: Option<&Authenticated>,
        code: &str,
        reason: &str,
        cert: Option<&Certified>,
    ) -> Self {
        Self {
            api: api.to_owned(),
            identity: bounded(identity),
            peer: peer.map(|p| p.to_string()),
            caller: caller.map(Caller::from_authenticated),
            code: code.to_owned(),
            reason: reason.to_owned(),
            cert: cert.map(CertFields::from_certified),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn a_huge_requested_identity_is_cut_at_253_bytes() {
        assert_eq!(bounded("web.shop"), "web.shop");
        let long = "é".repeat(300);
        let kept = bounded(&long);
        assert!(kept.len() <= 253 + "…".len(), "{}", kept.len());
        assert!(kept.ends_with('…'));
    }
}
