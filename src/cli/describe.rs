//! What `inspect`, `check` and `ca` show about a certificate: names, validity and time
//! left, key type, CA flags and fingerprint, for a table or for JSON.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use certmint_core::ca::cert::CertInfo;
use certmint_core::ca::fmt_time;
use certmint_core::digest::unix_seconds;

const OID_EC_P256: &str = "1.2.840.10045.3.1.7";
const OID_EC_P384: &str = "1.3.132.0.34";
const OID_EC_P521: &str = "1.3.132.0.35";
const OID_ED25519: &str = "1.3.101.112";

/// How `check` and `inspect` print their report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
}

/// A certificate as the lifecycle commands report it.
#[derive(Clone, Debug, Serialize)]
pub struct CertView {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub dns_names: Vec<String>,
    /// URI SANs; a mesh identity's SPIFFE ID is one of them.
    pub uris: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub emails: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    /// Seconds from now to notAfter; negative once expired.
    pub remaining_seconds: i64,
    /// Whole days from now to notAfter (rounded down; negative once expired).
    pub remaining_days: i64,
    pub key: String,
    pub ca: bool,
    pub path_len: Option<u32>,
    pub key_usage: Vec<String>,
    pub extended_key_usage: Vec<String>,
    pub self_signed: bool,
    pub fingerprint_sha256: String,
}

impl CertView {
    /// Describes `info` as seen at `now`.
    pub fn new(info: &CertInfo, now: SystemTime) -> Self {
        let remaining = unix_seconds(info.not_after) - unix_seconds(now);
        let mut view = CertView {
            subject: info.subject.clone(),
            issuer: info.issuer.clone(),
            serial: info.serial_hex.clone(),
            dns_names: Vec::new(),
            uris: Vec::new(),
            ip_addresses: Vec::new(),
            emails: Vec::new(),
            not_before: fmt_time(info.not_before),
            not_after: fmt_time(info.not_after),
            remaining_seconds: remaining,
            remaining_days: remaining.div_euclid(86_400),
            key: "unknown".into(),
            ca: info.is_ca,
            path_len: None,
            key_usage: Vec::new(),
            extended_key_usage: Vec::new(),
            self_signed: info.self_signed,
            fingerprint_sha256: info.fingerprint_sha256.clone(),
        };
        // CertInfo::parse already accepted this DER, so a failure here is not expected.
        if let Ok((_, x509)) = X509Certificate::from_der(&info.der) {
            view.fill_extensions(&x509);
            view.key = key_type(&x509);
        }
        view
    }

    fn fill_extensions(&mut self, x509: &X509Certificate<'_>) {
        if let Ok(Some(san)) = x509.subject_alternative_name() {
            for name in &san.value.general_names {
                self.add_name(name);
            }
        }
        if let Ok(Some(bc)) = x509.basic_constraints() {
            self.path_len = bc.value.path_len_constraint;
        }
        if let Ok(Some(ku)) = x509.key_usage() {
            let k = ku.value;
            let flags = [
                (k.digital_signature(), "digitalSignature"),
                (k.non_repudiation(), "nonRepudiation"),
                (k.key_encipherment(), "keyEncipherment"),
                (k.data_encipherment(), "dataEncipherment"),
                (k.key_agreement(), "keyAgreement"),
                (k.key_cert_sign(), "keyCertSign"),
                (k.crl_sign(), "cRLSign"),
                (k.encipher_only(), "encipherOnly"),
                (k.decipher_only(), "decipherOnly"),
            ];
            self.key_usage = names_of(&flags);
        }
        if let Ok(Some(eku)) = x509.extended_key_usage() {
            let e = eku.value;
            let known = [
                (e.server_auth, "serverAuth"),
                (e.client_auth, "clientAuth"),
                (e.code_signing, "codeSigning"),
                (e.email_protection, "emailProtection"),
                (e.time_stamping, "timeStamping"),
                (e.ocsp_signing, "OCSPSigning"),
                (e.any, "any"),
            ];
            self.extended_key_usage = names_of(&known);
            self.extended_key_usage
                .extend(e.other.iter().map(|o| o.to_id_string()));
        }
    }

    fn add_name(&mut self, name: &GeneralName<'_>) {
        match name {
            GeneralName::DNSName(d) => self.dns_names.push(d.to_string()),
            GeneralName::URI(u) => self.uris.push(u.to_string()),
            GeneralName::RFC822Name(m) => self.emails.push(m.to_string()),
            GeneralName::IPAddress(ip) => self.ip_addresses.push(ip_string(ip)),
            _ => {}
        }
    }

    /// Every SAN in `TYPE:value` form, for one-line display.
    pub fn sans(&self) -> Vec<String> {
        let tagged = |tag: &str, v: &[String]| -> Vec<String> {
            v.iter().map(|s| format!("{tag}:{s}")).collect()
        };
        [
            tagged("DNS", &self.dns_names),
            tagged("URI", &self.uris),
            tagged("IP", &self.ip_addresses),
            tagged("email", &self.emails),
        ]
        .concat()
    }

    /// "yes (path length 0)" / "yes" / "no".
    pub fn ca_text(&self) -> String {
        match (self.ca, self.path_len) {
            (true, Some(n)) => format!("yes (path length {n})"),
            (true, None) => "yes".into(),
            (false, _) => "no".into(),
        }
    }

    /// Time left as a short phrase: "3649d", "5h 12m", "expired 3d ago".
    pub fn left_text(&self) -> String {
        left_text(self.remaining_seconds)
    }
}

/// "3649d", "5h 12m", "expired 3d ago" for a number of seconds left.
pub fn left_text(secs: i64) -> String {
    if secs < 0 {
        return format!("expired {} ago", span(-secs));
    }
    span(secs)
}

/// A duration as flags are written: "60d", "24h", else humantime's form.
pub fn duration_text(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s > 0 && s % 86_400 == 0 && s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        _ => humantime::format_duration(d).to_string(),
    }
}

/// `t` without its fraction of a second, for reports.
pub fn whole_seconds(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs())
}

fn span(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (d, _) if d >= 2 => format!("{d}d"),
        (1, h) => format!("1d {h}h"),
        (0, 0) => format!("{m}m"),
        (_, h) => format!("{h}h {m}m"),
    }
}

fn names_of(flags: &[(bool, &str)]) -> Vec<String> {
    flags
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn ip_string(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => certmint_core::digest::hex(bytes),
    }
}

fn key_type(x509: &X509Certificate<'_>) -> String {
    let spki = x509.public_key();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(_)) => match curve.as_deref() {
            Some(OID_EC_P256) => "ECDSA P-256".into(),
            Some(OID_EC_P384) => "ECDSA P-384".into(),
            Some(OID_EC_P521) => "ECDSA P-521".into(),
            other => format!("ECDSA ({})", other.unwrap_or("unknown curve")),
        },
        _ if spki.algorithm.algorithm.to_id_string() == OID_ED25519 => "Ed25519".into(),
        _ => format!("unknown ({})", spki.algorithm.algorithm.to_id_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_naturally() {
        assert_eq!(left_text(400 * 86_400), "400d");
        assert_eq!(left_text(86_400 + 7200), "1d 2h");
        assert_eq!(left_text(5 * 3600 + 12 * 60), "5h 12m");
        assert_eq!(left_text(59), "0m");
        assert_eq!(left_text(-3 * 86_400), "expired 3d ago");
        assert_eq!(duration_text(Duration::from_secs(60 * 86_400)), "60d");
        assert_eq!(duration_text(Duration::from_secs(86_400)), "24h");
        assert_eq!(duration_text(Duration::from_secs(90)), "1m 30s");
    }

    #[test]
    fn describes_sans_key_and_ca_flags() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
        p.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://cluster.local/ns/a/sa/b".try_into().unwrap(),
        ));
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        let cert = p.self_signed(&key).unwrap();
        let info = CertInfo::parse(cert.der().clone(), 0).unwrap();
        let view = CertView::new(&info, SystemTime::now());
        assert_eq!(view.key, "ECDSA P-384");
        assert_eq!(view.ca_text(), "yes (path length 0)");
        assert_eq!(
            view.sans(),
            [
                "DNS:a.example",
                "URI:spiffe://cluster.local/ns/a/sa/b",
                "IP:127.0.0.1"
            ]
        );
    }
}
