//! The checks behind `certmint check`, pure over the inputs and an injected clock. The
//! chain verdict comes from [`Issuer::load`], the validation `certmint serve` applies, so
//! check and serve never disagree.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::cli::describe::{CertView, duration_text, left_text, whole_seconds};
use certmint_core::ca::CaKey;
use certmint_core::ca::cert::{CertInfo, parse_pem_chain};
use certmint_core::ca::{Issuer, IssuerError, IssuerMaterial, LeafNames, TrustAnchors, fmt_time};
use certmint_core::digest::unix_seconds;

/// How bad a finding is; the exit code is that of the worst one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warn,
    Error,
}

impl Severity {
    pub fn exit_code(self) -> u8 {
        self as u8
    }
}

/// One checked fact about one object.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// What the finding is about: "trust anchors", "issuer", "issuer key", ...
    pub object: String,
    pub message: String,
}

/// A certificate in the report, with its role.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub role: &'static str,
    #[serde(flatten)]
    pub cert: CertView,
}

/// What was checked, from where.
pub struct Inputs {
    pub anchors_source: String,
    pub anchors_pem: Vec<u8>,
    pub issuer_source: String,
    pub issuer: IssuerMaterial,
}

/// The thresholds and the probe identity.
pub struct Settings {
    pub now: SystemTime,
    pub warn_within: Duration,
    pub leaf_lifetime: Duration,
    pub probe: LeafNames,
    /// Resolves a `pkcs11:` issuer key (`--pkcs11-module`, `--pin-file`).
    pub keys: Box<dyn certmint_core::ca::KeyResolver>,
}

/// The outcome: certificates, findings (worst last) and the overall severity.
#[derive(Debug, Serialize)]
pub struct Report {
    pub trust_anchors: String,
    pub issuer: String,
    pub checked_at: String,
    pub warn_within_seconds: u64,
    pub leaf_lifetime_seconds: u64,
    pub certificates: Vec<Row>,
    pub findings: Vec<Finding>,
    pub result: Severity,
    pub exit_code: u8,
}

struct Checker<'a> {
    s: &'a Settings,
    rows: Vec<Row>,
    findings: Vec<Finding>,
}

/// Runs every check.
pub fn evaluate(inputs: &Inputs, settings: &Settings) -> Report {
    let mut c = Checker {
        s: settings,
        rows: Vec::new(),
        findings: Vec::new(),
    };
    let anchors = c.anchors(inputs);
    let issuer_ok = c.issuer(inputs);
    match (&anchors, issuer_ok) {
        (Some(anchors), true) => c.chain(&inputs.issuer, anchors),
        (Some(_), false) => {}
        (None, _) => c.add(
            Severity::Error,
            "issuer chain",
            "not checked: the trust anchors are unusable",
        ),
    }
    c.report(inputs)
}

impl Report {
    /// Re-sorts the findings and recomputes the result after findings were added.
    pub fn settle(&mut self) {
        self.findings.sort_by_key(|f| f.severity);
        self.result = self
            .findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok);
        self.exit_code = self.result.exit_code();
    }
}

impl Checker<'_> {
    fn add(&mut self, severity: Severity, object: &str, message: impl Into<String>) {
        self.findings.push(Finding {
            severity,
            object: object.into(),
            message: message.into(),
        });
    }

    fn has_error(&self, object_prefix: &str) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Error && f.object.starts_with(object_prefix))
    }

    /// Parses and checks the bundle; the usable anchors, if any.
    fn anchors(&mut self, inputs: &Inputs) -> Option<TrustAnchors> {
        let certs = match parse_pem_chain(&inputs.anchors_pem) {
            Ok(certs) => certs,
            Err(e) => {
                let msg = format!(
                    "{}: {e}; expected PEM certificates (-----BEGIN CERTIFICATE-----)",
                    inputs.anchors_source
                );
                self.add(Severity::Error, "trust anchors", msg);
                return None;
            }
        };
        let any_valid = certs.iter().any(|c| c.is_valid_at(self.s.now));
        for cert in &certs {
            self.anchor(cert, any_valid);
        }
        match TrustAnchors::from_pem(&inputs.anchors_pem, self.s.now) {
            Ok(anchors) => Some(anchors),
            Err(e) => {
                if !self.has_error("trust anchor") {
                    self.add(Severity::Error, "trust anchors", e.to_string());
                }
                None
            }
        }
    }

    fn anchor(&mut self, cert: &CertInfo, others_valid: bool) {
        let object = format!("trust anchor {}", cert.subject);
        self.row("trust anchor", cert);
        if !cert.is_ca || !cert.can_sign_certs {
            self.add(
                Severity::Error,
                &object,
                "not a CA (needs CA:true and keyCertSign): it cannot be a trust anchor",
            );
        }
        let (invalid, fix) = if others_valid {
            (Severity::Warn, "remove it from the bundle")
        } else {
            (
                Severity::Error,
                "create a new root (certmint ca root) and rotate the anchors",
            )
        };
        self.expiry(&object, cert, invalid, fix, "rotate the trust anchors");
    }

    /// Parses and checks the issuer files; true when the chain check can run.
    fn issuer(&mut self, inputs: &Inputs) -> bool {
        let certs = match parse_pem_chain(&inputs.issuer.cert_pem) {
            Ok(certs) => certs,
            Err(e) => {
                let msg = format!("{}: certificate: {e}", inputs.issuer_source);
                self.add(Severity::Error, "issuer", msg);
                return false;
            }
        };
        let key_ok = self.issuer_key(inputs, &certs[0]);
        let cert = &certs[0];
        let object = format!("issuer {}", cert.subject);
        if cert.is_ca && cert.can_sign_certs {
            self.add(Severity::Ok, &object, "is a CA (CA:true, keyCertSign)");
        } else {
            self.add(
                Severity::Error,
                &object,
                "not a CA (needs CA:true and keyCertSign): create one with certmint ca issuer",
            );
        }
        // The server ignores self-signed certificates after the issuer (a root copied in).
        let shown = certs
            .iter()
            .enumerate()
            .filter(|(i, c)| *i == 0 || !c.self_signed);
        for (i, c) in shown {
            let (role, object) = match i {
                0 => ("issuer", object.clone()),
                _ => ("intermediate", format!("intermediate {}", c.subject)),
            };
            self.row(role, c);
            let fix = "create a new issuer (certmint ca issuer) and replace the issuer Secret";
            self.expiry(&object, c, Severity::Error, fix, "rotate the issuer");
        }
        key_ok
    }

    fn issuer_key(&mut self, inputs: &Inputs, cert: &CertInfo) -> bool {
        match CaKey::from_key_file(&inputs.issuer.key_pem, self.s.keys.as_ref()) {
            Err(e) => {
                let msg = format!("{}: {e}", inputs.issuer_source);
                self.add(Severity::Error, "issuer key", msg);
                false
            }
            Ok(key) if key.public_key_raw() != cert.public_key.as_slice() => {
                let msg = "does not match the issuer certificate: the key file belongs to another certificate; use the key created with it";
                self.add(Severity::Error, "issuer key", msg);
                false
            }
            Ok(key) => {
                let msg = match key.location() {
                    Some(at) => format!("in an HSM ({at}); matches the issuer certificate"),
                    None => "matches the issuer certificate".to_owned(),
                };
                self.add(Severity::Ok, "issuer key", msg);
                true
            }
        }
    }

    /// Validity at `now` (outside it: `invalid`, with `fix`) and expiry within the warning
    /// window (a warning, with `plan`).
    fn expiry(&mut self, object: &str, c: &CertInfo, invalid: Severity, fix: &str, plan: &str) {
        let now = self.s.now;
        let left = unix_seconds(c.not_after) - unix_seconds(now);
        let until = fmt_time(c.not_after);
        if c.not_before > now {
            let msg = format!(
                "not valid until {} (check the clocks)",
                fmt_time(c.not_before)
            );
            self.add(invalid, object, msg);
        } else if c.not_after <= now {
            let msg = format!("expired {until} ({}): {fix}", left_text(left));
            self.add(invalid, object, msg);
        } else if c.not_after <= now + self.s.warn_within {
            let msg = format!(
                "expires {until}, in {} (within --warn-within {}): {plan}",
                left_text(left),
                duration_text(self.s.warn_within)
            );
            self.add(Severity::Warn, object, msg);
        } else {
            let msg = format!("valid until {until} ({} left)", left_text(left));
            self.add(Severity::Ok, object, msg);
        }
    }

    /// The server's own validation, then whether the chain outlives a leaf.
    fn chain(&mut self, material: &IssuerMaterial, anchors: &TrustAnchors) {
        let keys = self.s.keys.as_ref();
        match Issuer::load_with(material, anchors, &self.s.probe, self.s.now, keys) {
            Ok(issuer) => {
                let anchor = anchor_of(&issuer, anchors);
                let msg = format!(
                    "chains to trust anchor {anchor}; a probe leaf verifies for server and client auth, as certmint serve checks"
                );
                self.add(Severity::Ok, "issuer chain", msg);
                self.outlives_leaf(issuer.chain_not_after());
            }
            Err(e @ (IssuerError::Untrusted(_) | IssuerError::Signing(_))) => {
                let why = if e.to_string().contains("InvalidSignatureForPublicKey") {
                    " (an anchor has the name of the issuer's signer but another key)"
                } else {
                    ""
                };
                let msg = format!(
                    "{e}{why}: sign the issuer with one of the anchors (certmint ca issuer), or add its root to the bundle (certmint ca bundle)"
                );
                self.add(Severity::Error, "issuer chain", msg);
            }
            // Anything else was reported above; stay exit 2 whenever serve would refuse.
            Err(e) if !self.has_error("issuer") && !self.has_error("intermediate") => {
                self.add(Severity::Error, "issuer", e.to_string());
            }
            Err(_) => {}
        }
    }

    fn outlives_leaf(&mut self, chain_not_after: SystemTime) {
        let now = self.s.now;
        let lifetime = duration_text(self.s.leaf_lifetime);
        let left = left_text(unix_seconds(chain_not_after) - unix_seconds(now));
        if chain_not_after < now + self.s.leaf_lifetime {
            let msg = format!(
                "the chain expires in {left}, sooner than a {lifetime} leaf: new leaves are cut short at {}; rotate the issuer now",
                fmt_time(chain_not_after)
            );
            self.add(Severity::Warn, "leaf lifetime", msg);
        } else {
            let msg = format!("the chain outlives a {lifetime} leaf ({left} left)");
            self.add(Severity::Ok, "leaf lifetime", msg);
        }
    }

    fn row(&mut self, role: &'static str, cert: &CertInfo) {
        self.rows.push(Row {
            role,
            cert: CertView::new(cert, self.s.now),
        });
    }

    fn report(mut self, inputs: &Inputs) -> Report {
        // Stable: same-severity findings keep their order; the worst comes last.
        self.findings.sort_by_key(|f| f.severity);
        let result = self
            .findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok);
        Report {
            trust_anchors: inputs.anchors_source.clone(),
            issuer: inputs.issuer_source.clone(),
            checked_at: fmt_time(whole_seconds(self.s.now)),
            warn_within_seconds: self.s.warn_within.as_secs(),
            leaf_lifetime_seconds: self.s.leaf_lifetime.as_secs(),
            certificates: self.rows,
            findings: self.findings,
            result,
            exit_code: result.exit_code(),
        }
    }
}

/// The subject of the anchor the issuer chain ends at (by issuer name).
fn anchor_of(issuer: &Issuer, anchors: &TrustAnchors) -> String {
    let last = issuer
        .chain()
        .last()
        .and_then(|der| CertInfo::parse(der.clone(), 0).ok());
    last.and_then(|l| anchors.certs().iter().find(|a| a.subject == l.issuer))
        .map_or_else(|| "(unknown)".into(), |a| a.subject.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use certmint_core::ca::create::{CaMaterial, KeyType, generate_key, new_issuer, new_root};

    const DAY: Duration = Duration::from_secs(86_400);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)
    }

    fn root(name: &str, from: SystemTime, lifetime: Duration) -> CaMaterial {
        new_root(name, lifetime, generate_key(KeyType::P256).unwrap(), from).unwrap()
    }

    fn issuer(ca: &CaMaterial, from: SystemTime, lifetime: Duration) -> CaMaterial {
        let key = generate_key(KeyType::P256).unwrap();
        new_issuer(&ca.cert_pem, &ca.key_pem, "issuer", lifetime, 0, key, from).unwrap()
    }

    fn run(anchors: &str, issuer: &CaMaterial) -> Report {
        let inputs = Inputs {
            anchors_source: "anchors.pem".into(),
            anchors_pem: anchors.as_bytes().to_vec(),
            issuer_source: "issuer/".into(),
            issuer: IssuerMaterial {
                cert_pem: issuer.cert_pem.as_bytes().to_vec(),
                key_pem: issuer.key_pem.as_bytes().to_vec(),
            },
        };
        let naming = certmint_core::identity::Naming::new("linkerd", "cluster.local").unwrap();
        let settings = Settings {
            now: now(),
            warn_within: 60 * DAY,
            leaf_lifetime: DAY,
            probe: certmint_core::ca::probe_names(&naming),
            keys: Box::new(certmint_core::ca::NoExternalKeys),
        };
        evaluate(&inputs, &settings)
    }

    fn finding<'a>(r: &'a Report, object: &str) -> &'a Finding {
        r.findings
            .iter()
            .rev()
            .find(|f| f.object.starts_with(object))
            .unwrap_or_else(|| panic!("no finding for {object}: {:#?}", r.findings))
    }

    #[test]
    fn fresh_root_and_issuer_are_healthy() {
        let ca = root("root", now(), 3650 * DAY);
        let r = run(&ca.cert_pem, &issuer(&ca, now(), 365 * DAY));
        assert_eq!(r.result, Severity::Ok, "{:#?}", r.findings);
        assert_eq!(r.exit_code, 0);
        assert_eq!(r.certificates.len(), 2);
        assert_eq!(finding(&r, "issuer chain").severity, Severity::Ok);
    }

    #[test]
    fn anchor_expiring_within_the_window_warns() {
        let ca = root("root", now() - DAY, 31 * DAY);
        let r = run(&ca.cert_pem, &issuer(&ca, now(), 365 * DAY));
        assert_eq!(r.exit_code, 1);
        let f = finding(&r, "trust anchor");
        assert_eq!(f.severity, Severity::Warn);
        assert!(f.message.contains("in 30d"), "{}", f.message);
    }

    #[test]
    fn an_expired_anchor_beside_a_valid_one_is_a_warning_alone_an_error() {
        let old = root("old root", now() - 20 * DAY, 10 * DAY);
        let new = root("new root", now(), 3650 * DAY);
        let iss = issuer(&new, now(), 365 * DAY);
        let r = run(&format!("{}{}", old.cert_pem, new.cert_pem), &iss);
        assert_eq!(r.result, Severity::Warn, "{:#?}", r.findings);
        assert!(
            finding(&r, "trust anchor CN=old root")
                .message
                .contains("remove it")
        );

        let r = run(&old.cert_pem, &iss);
        assert_eq!(r.result, Severity::Error);
        assert!(finding(&r, "issuer chain").message.contains("not checked"));
    }

    #[test]
    fn the_worst_finding_comes_last() {
        let ca = root("root", now() - DAY, 31 * DAY);
        let other = root("other", now(), 3650 * DAY);
        let r = run(&other.cert_pem, &issuer(&ca, now(), 365 * DAY));
        let severities: Vec<Severity> = r.findings.iter().map(|f| f.severity).collect();
        assert!(severities.is_sorted(), "{severities:?}");
        let last = r.findings.last().unwrap();
        assert_eq!(
            (last.severity, last.object.as_str()),
            (Severity::Error, "issuer chain")
        );
        assert!(last.message.contains("UnknownIssuer"), "{}", last.message);
    }

    #[test]
    fn an_issuer_outlived_by_a_leaf_warns() {
        let ca = root("root", now(), 3650 * DAY);
        let iss = issuer(
            &ca,
            now() - 364 * DAY,
            365 * DAY - Duration::from_secs(3600),
        );
        let r = run(&ca.cert_pem, &iss);
        assert_eq!(finding(&r, "leaf lifetime").severity, Severity::Warn);
    }
}
