//! Audit records: one JSON line each, built with serde from typed structs. Every record
//! carries its place in a chain (`seq`, `chain`, `prev`); `kind` says what it records.
//! Records never hold a token, a CSR or key bytes.

use std::borrow::Cow;
use std::fmt::Display;
use std::net::SocketAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize, Serializer};

use super::body::EncodedBody;
use certmint_core::authn::Authenticated;
use certmint_core::certify::Certified;
use certmint_core::digest::hex;

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
    Gap(Gap),
    Override(Override),
}

/// An operator activated an issuer that running workloads do not trust (the trust
/// interlock's emergency override, issue 21).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Override {
    /// The issuer activated: subject and serial (hex).
    pub issuer: String,
    pub serial: String,
    /// SHA-256 (hex) of the trust anchor its chain reaches.
    pub anchor_sha256: String,
    /// Running workloads that did not trust it, and a few of them.
    pub untrusting: u64,
    pub sample: Vec<String>,
}

/// Records some sink does not hold, said inside the chain (written when the sink takes
/// records again, or with the next record written after none could be).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Gap {
    /// Records (Certify outcomes) no sink took since the previous line: they have no seq.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unwritten: u64,
    /// Sinks that missed records of this chain that other sinks hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missed: Vec<Missed>,
    /// Under `refuse`: ranges a sink holds although their callers were answered
    /// UNAVAILABLE, because it could not take the batch back when another sink failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undelivered: Vec<Span>,
    /// The last write error.
    pub reason: String,
}

/// One sink's missing range: seq `from`..=`to`; `after` is the hash of the last line that
/// sink holds before them, so the gap links into that sink's chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Missed {
    pub sink: String,
    pub from: u64,
    pub to: u64,
    pub after: String,
}

/// Seq `from`..=`to` in one sink.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Span {
    pub sink: String,
    pub from: u64,
    pub to: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    /// The wire API (`linkerd`, `istio` or `pod_certificate`).
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
    /// The Kubernetes object the outcome was written to (`namespace/name` of a
    /// PodCertificateRequest); absent for gRPC calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The code the caller got instead of this certificate: it was signed but not
    /// delivered (its record reached the writer after Certify had stopped waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undelivered: Option<String>,
}

/// The authenticated caller.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Caller {
    pub namespace: String,
    pub service_account: String,
    /// How the token was proven: `tokenreview`, `local`, `local_fallback` or `jwt`
    /// (`cache` in files written before `cached` existed).
    pub method: String,
    /// The proof was an earlier answer reused from the token cache.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
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
    /// The signed form: `2` covers the whole record ([`super::checkpoint::signed_bytes_v2`]);
    /// absent on files written before it, whose signatures cover
    /// [`super::checkpoint::signed_bytes`] (v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig_v: Option<u32>,
    /// Base64 signature over the signed form's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// Written on a clean shutdown: nothing follows in this chain.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last: bool,
}

/// The requested identity as recorded: a refused request may carry anything up to the
/// message size limit, so at most 253 bytes are kept (then `…`).
fn bounded(identity: &str) -> Cow<'_, str> {
    const MAX: usize = certmint_core::certify::MAX_IDENTITY_BYTES;
    if identity.len() <= MAX {
        return Cow::Borrowed(identity);
    }
    let mut end = MAX;
    while !identity.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &identity[..end]))
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
            cached: a.cached,
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
            sha256: hex(&certmint_core::digest::sha256(&c.leaf)),
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
            identity: bounded(identity).into_owned(),
            peer: peer.map(|p| p.to_string()),
            caller: caller.map(Caller::from_authenticated),
            code: code.to_owned(),
            reason: reason.to_owned(),
            cert: cert.map(CertFields::from_certified),
            request: None,
            undelivered: None,
        }
    }
}

/// A certify record's body as Certify hands it to the writer: [`CertifyRecord`]'s fields
/// borrowed from the call instead of copied into strings, serialised to the same bytes as
/// `Body::Certify` (a test holds the two together). Saves a score of allocations per call.
#[derive(Serialize)]
#[serde(tag = "kind", rename = "certify")]
pub struct CertifyView<'a> {
    api: &'static str,
    identity: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<Shown<SocketAddr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller: Option<CallerView<'a>>,
    code: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert: Option<CertView<'a>>,
}

#[derive(Serialize)]
struct CallerView<'a> {
    namespace: &'a str,
    service_account: &'a str,
    method: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
}

#[derive(Serialize)]
struct CertView<'a> {
    serial: Hex<'a>,
    not_before: Shown<humantime::Rfc3339Timestamp>,
    not_after: Shown<humantime::Rfc3339Timestamp>,
    sha256: Hex<'static>,
    spki_sha256: Hex<'a>,
    issuer_serial: &'a str,
    issuer_sha256: &'a str,
}

/// A value serialised as the string its `Display` writes (no intermediate `String`).
struct Shown<T>(T);

impl<T: Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// Bytes serialised as lower-case hex, like [`hex`], through a stack buffer.
enum Hex<'a> {
    Borrowed(&'a [u8]),
    Digest([u8; 32]),
}

impl Serialize for Hex<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let bytes = match self {
            Hex::Borrowed(b) => b,
            Hex::Digest(d) => &d[..],
        };
        let mut buf = [0u8; 64];
        if bytes.len() > buf.len() / 2 {
            return s.serialize_str(&hex(bytes));
        }
        for (pair, b) in buf.chunks_exact_mut(2).zip(bytes) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0x0f)];
        }
        let text = std::str::from_utf8(&buf[..bytes.len() * 2]).unwrap_or_default();
        s.serialize_str(text)
    }
}

impl<'a> CertifyView<'a> {
    /// The record of one Certify call, as [`CertifyRecord::new`] makes it.
    pub fn new(
        api: &'static str,
        identity: &'a str,
        peer: Option<SocketAddr>,
        caller: Option<&'a Authenticated>,
        code: &'a str,
        reason: &'a str,
        cert: Option<&'a Certified>,
    ) -> Self {
        Self {
            api,
            identity: bounded(identity),
            peer: peer.map(Shown),
            caller: caller.map(|a| CallerView {
                namespace: a.account.namespace(),
                service_account: a.account.name(),
                method: a.method.as_str(),
                cached: a.cached,
                pod_name: a.pod.as_ref().map(|p| p.name.as_str()),
                pod_uid: a.pod.as_ref().map(|p| p.uid.as_str()),
                node: a.node.as_deref(),
            }),
            code,
            reason,
            cert: cert.map(|c| CertView {
                serial: Hex::Borrowed(&c.serial),
                not_before: Shown(humantime::format_rfc3339_millis(c.not_before)),
                not_after: Shown(humantime::format_rfc3339_millis(c.not_after)),
                sha256: Hex::Digest(certmint_core::digest::sha256(&c.leaf)),
                spki_sha256: Hex::Borrowed(&c.spki_sha256),
                issuer_serial: &c.issuer_serial,
                issuer_sha256: &c.issuer_sha256,
            }),
        }
    }

    /// The record serialised, for [`AuditLog::record`](super::AuditLog::record).
    pub fn encode(&self) -> EncodedBody {
        EncodedBody::new(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use certmint_core::authn::caller::{Method, PodRef};
    use certmint_core::identity::ServiceAccount;

    /// Certify serialises a [`CertifyView`]; `audit find` and `verify` read
    /// [`CertifyRecord`]: both must be the same bytes, for issued and refused calls, with
    /// and without a caller, pod or peer, and for strings that need escaping.
    #[test]
    fn the_borrowed_view_serialises_as_the_owned_record() {
        let pod = Some(PodRef {
            name: "web-7d9f".into(),
            uid: "0a1b-\"2c\"".into(),
        });
        let with_pod = Authenticated::new(
            ServiceAccount::new("shop", "web").unwrap(),
            Method::TokenReview,
            pod,
        )
        .with_node(Some("node-a"))
        .from_cache();
        let without_pod = Authenticated::new(
            ServiceAccount::new("shop", "web").unwrap(),
            Method::LocalFallback,
            None,
        );
        let certified = Certified {
            leaf: rustls_pki_types::CertificateDer::from(vec![0x30, 0x82, 0x01, 0x0a]),
            chain: Vec::new(),
            anchors: test_anchors(),
            not_before: UNIX_EPOCH + Duration::from_millis(1_796_000_000_123),
            not_after: UNIX_EPOCH + Duration::from_secs(1_796_086_400),
            serial: [0x0f; 16],
            spki_sha256: [0xa5; 32],
            issuer_serial: "01ff".into(),
            issuer_sha256: "ee".repeat(32),
        };
        let peer: SocketAddr = "[::1]:4143".parse().unwrap();
        let long = "é\u{7}\"".repeat(200);
        let cases = [
            (
                "web.shop.svc",
                Some(peer),
                Some(&with_pod),
                "OK",
                "issued",
                Some(&certified),
            ),
            (
                "web.shop.svc",
                None,
                Some(&without_pod),
                "OK",
                "issued",
                Some(&certified),
            ),
            (
                &long[..],
                Some(peer),
                None,
                "INVALID_ARGUMENT",
                "bad \"csr\"\n",
                None,
            ),
            ("", None, Some(&with_pod), "PERMISSION_DENIED", "no", None),
        ];
        for (identity, peer, caller, code, reason, cert) in cases {
            let view = CertifyView::new("istio", identity, peer, caller, code, reason, cert);
            let mut record =
                CertifyRecord::new("istio", identity, peer, caller, code, reason, cert);
            let owned = serde_json::to_string(&Body::Certify(Box::new(record.clone()))).unwrap();
            assert_eq!(serde_json::to_string(&view).unwrap(), owned);
            // The writer marks a certificate the caller did not get by splicing.
            let mut spliced = view.encode();
            spliced.mark_undelivered("UNAVAILABLE");
            record.undelivered = Some("UNAVAILABLE".into());
            let owned = serde_json::to_string(&Body::Certify(Box::new(record))).unwrap();
            assert_eq!(String::from_utf8_lossy(spliced.as_bytes()), owned);
        }
    }

    #[test]
    fn a_huge_requested_identity_is_cut_at_253_bytes() {
        assert_eq!(bounded("web.shop"), "web.shop");
        let long = "é".repeat(300);
        let kept = bounded(&long);
        assert!(kept.len() <= 253 + "…".len(), "{}", kept.len());
        assert!(kept.ends_with('…'));
    }

    /// A one-root bundle; records never carry it, so any valid root will do.
    fn test_anchors() -> std::sync::Arc<certmint_core::ca::TrustAnchors> {
        use certmint_core::ca::create::{KeyType, generate_key, new_root};
        let now = std::time::SystemTime::now();
        let key = generate_key(KeyType::P256).unwrap();
        let root = new_root("root", Duration::from_secs(3600), key, now).unwrap();
        let anchors = certmint_core::ca::TrustAnchors::from_pem(root.cert_pem.as_bytes(), now);
        std::sync::Arc::new(anchors.unwrap())
    }
}
