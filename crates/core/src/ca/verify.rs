//! Verifying a leaf and its chain the way a TLS peer would (rustls-webpki).

use std::time::SystemTime;

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::anchors::TrustAnchors;

/// Verifies `leaf` + `intermediates` to a currently valid anchor, for server and client
/// auth, and (when given) that the leaf is valid for DNS name `name`.
pub fn verify_leaf(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &TrustAnchors,
    name: Option<&str>,
    now: SystemTime,
) -> Result<(), String> {
    let ee =
        webpki::EndEntityCert::try_from(leaf).map_err(|e| format!("leaf does not parse: {e:?}"))?;
    let trusted = anchors.valid_at(now);
    let time = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    for (role, usage) in [
        ("server", webpki::KeyUsage::server_auth()),
        ("client", webpki::KeyUsage::client_auth()),
    ] {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &trusted,
            intermediates,
            time,
            usage,
            None,
            None,
        )
        .map_err(|e| format!("chain does not verify for {role} auth: {e:?}"))?;
    }
    if let Some(name) = name {
        let server_name =
            ServerName::try_from(name).map_err(|_| format!("{name:?} is not a DNS name"))?;
        ee.verify_is_valid_for_subject_name(&server_name)
            .map_err(|e| format!("leaf is not valid for {name}: {e:?}"))?;
    }
    Ok(())
}
