//! Whether an inspected chain verifies to given trust anchors, and why not. A leaf is
//! verified as a TLS peer would (webpki, server and client auth, the name when given); a
//! CA certificate (an issuer file) by its signatures up to a current anchor.

use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use certmint_core::ca::TrustAnchors;
use certmint_core::ca::cert::CertInfo;
use certmint_core::ca::fmt_time;
use certmint_core::ca::verify::verify_leaf;
use certmint_core::fsutil::read_bounded;
use certmint_k8s::sources::files::MAX_PEM_BYTES;

/// The verdict, for the table and for JSON.
#[derive(Debug, Serialize)]
pub struct Verification {
    pub trust_anchors: String,
    pub server_name: Option<String>,
    pub verified: bool,
    pub detail: String,
}

impl Verification {
    /// One line for the table.
    pub fn line(&self) -> String {
        let verdict = if self.verified { "yes" } else { "NO" };
        format!(
            "verified against {}: {verdict}: {}\n",
            self.trust_anchors, self.detail
        )
    }
}

/// Verifies `certs` (leaf first) against the bundle at `anchors_path`.
pub fn verify(
    certs: &[CertInfo],
    anchors_path: &Path,
    name: Option<&str>,
    now: SystemTime,
) -> anyhow::Result<Verification> {
    let pem = read_bounded(anchors_path, MAX_PEM_BYTES)
        .with_context(|| format!("cannot read --trust-anchors {}", anchors_path.display()))?;
    let result = match TrustAnchors::from_pem(&pem, now) {
        Err(e) => Err(format!("the trust anchors are unusable: {e}")),
        Ok(anchors) if certs[0].is_ca => verify_ca(certs, &anchors, now),
        Ok(anchors) => verify_chain(certs, &anchors, name, now),
    };
    let (verified, detail) = match result {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    Ok(Verification {
        trust_anchors: anchors_path.display().to_string(),
        server_name: name.map(str::to_owned),
        verified,
        detail,
    })
}

fn verify_chain(
    certs: &[CertInfo],
    anchors: &TrustAnchors,
    name: Option<&str>,
    now: SystemTime,
) -> Result<String, String> {
    let intermediates: Vec<_> = certs[1..].iter().map(|c| c.der.clone()).collect();
    verify_leaf(&certs[0].der, &intermediates, anchors, name, now).map_err(|e| hint(e, name))?;
    let ends_at = anchor_name(certs, anchors);
    Ok(match name {
        Some(n) => {
            format!("chains to trust anchor {ends_at} (server and client auth); valid for {n}")
        }
        None => format!("chains to trust anchor {ends_at} (server and client auth)"),
    })
}

fn hint(e: String, name: Option<&str>) -> String {
    if e.contains("UnknownIssuer") {
        format!("{e}: the chain is not from these trust anchors, or an intermediate is missing")
    } else if e.contains("CertExpired") || e.contains("CertNotValidYet") {
        format!("{e}: a certificate in the chain is outside its validity period")
    } else if e.contains("is not valid for")
        && name.is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
    {
        format!("{e}: pass --server-name with the name the server's certificate carries")
    } else {
        e
    }
}

/// A CA certificate: every certificate valid now, and signatures leading to an anchor.
fn verify_ca(
    certs: &[CertInfo],
    anchors: &TrustAnchors,
    now: SystemTime,
) -> Result<String, String> {
    if let Some(bad) = certs.iter().find(|c| !c.is_valid_at(now)) {
        return Err(format!(
            "{} is not valid now (valid {} to {})",
            bad.subject,
            fmt_time(bad.not_before),
            fmt_time(bad.not_after)
        ));
    }
    let trusted: Vec<&CertInfo> = anchors
        .certs()
        .iter()
        .filter(|a| a.is_valid_at(now))
        .collect();
    let mut current = &certs[0];
    for _ in 0..=certs.len() {
        if let Some(a) = trusted
            .iter()
            .find(|a| a.der == current.der || signed_by(current, a))
        {
            return Ok(format!(
                "chains to trust anchor {} (signatures checked)",
                a.subject
            ));
        }
        match certs
            .iter()
            .find(|c| c.der != current.der && signed_by(current, c))
        {
            Some(next) => current = next,
            None => {
                return Err(format!(
                    "{} is not signed by a current trust anchor or by another certificate in the input",
                    current.subject
                ));
            }
        }
    }
    Err("the certificates sign each other in a loop".into())
}

/// `signer` is a CA that issued `cert` and its signature checks out.
fn signed_by(cert: &CertInfo, signer: &CertInfo) -> bool {
    if cert.issuer != signer.subject || !signer.is_ca || !signer.can_sign_certs {
        return false;
    }
    let (Ok((_, c)), Ok((_, s))) = (
        X509Certificate::from_der(&cert.der),
        X509Certificate::from_der(&signer.der),
    ) else {
        return false;
    };
    c.verify_signature(Some(s.public_key())).is_ok()
}

/// The subject of the anchor the chain's last certificate names as its issuer.
fn anchor_name(certs: &[CertInfo], anchors: &TrustAnchors) -> String {
    let last = certs
        .iter()
        .rev()
        .find(|c| !c.self_signed)
        .unwrap_or(&certs[0]);
    anchors
        .certs()
        .iter()
        .find(|a| a.subject == last.issuer)
        .map_or_else(|| last.issuer.clone(), |a| a.subject.clone())
}
