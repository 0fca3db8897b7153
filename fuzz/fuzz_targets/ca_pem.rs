//! Issuer and anchor files as a mounted Secret/ConfigMap delivers them: one PEM blob is
//! read as a private key (PKCS#8, SEC1, PKCS#1), as a certificate chain, as a trust-anchor
//! bundle and, when that succeeds, as issuer material validated against it. The key entry
//! may instead hold a PKCS#11 URI (issue 22): it is parsed, and what parses prints back
//! to a URI that parses to the same key name.

#![no_main]

use std::time::SystemTime;

use certmint_core::ca::cert::parse_pem_chain;
use certmint_core::ca::keys::key_pair_from_pem;
use certmint_core::ca::{Issuer, IssuerMaterial, TrustAnchors};
use certmint_fuzz::probe_names;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(text) = certmint_core::ca::signing_key::external_reference(data)
        && let Ok(uri) = certmint_hsm::KeyUri::parse(text)
    {
        let again = certmint_hsm::KeyUri::parse(&uri.to_string()).expect("canonical form parses");
        assert_eq!(again, uri);
    }
    let now = SystemTime::now();
    let _ = key_pair_from_pem(data);
    let _ = parse_pem_chain(data);
    let Ok(anchors) = TrustAnchors::from_pem(data, now) else {
        return;
    };
    assert!(!anchors.valid_at(now).is_empty());
    let material = IssuerMaterial {
        cert_pem: data.to_vec(),
        key_pem: data.to_vec(),
    };
    if let Ok(issuer) = Issuer::load(&material, &anchors, &probe_names(), now) {
        assert!(issuer.is_valid_at(now));
    }
});
