//! Inputs the fuzz targets (fuzz/, README "Fuzzing") found crashing certmint, rebuilt
//! here from generated keys: each must now be refused with an error.

use certmint_testsupport as common;

use std::time::SystemTime;

use certmint_core::ca::{Issuer, IssuerMaterial, LeafNames, TrustAnchors};
use common::*;

/// `ca_pem`: an issuer whose subject carries an attribute type rcgen cannot write back
/// (its encoder panicked while signing the probe leaf, so a hostile issuer Secret took the
/// reloader down). Here the subject's commonName OID 2.5.4.3 becomes 2.109.4, a valid OID
/// that x509-parser decodes as arcs {3, 9, ...}, which rcgen then cannot encode.
#[test]
fn issuer_with_an_attribute_type_rcgen_cannot_encode_is_refused() {
    install_crypto();
    let root = pki::Ca::root("root");
    let issuer = root.issuer("issuer");
    let mut der = issuer.der.clone();
    let cn = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = der
        .windows(cn.len())
        .rposition(|w| w == cn)
        .expect("the subject's commonName");
    der[at + 2..at + 5].copy_from_slice(&[0x81, 0x3d, 0x04]);
    let material = IssuerMaterial {
        cert_pem: pem::encode(&pem::Pem::new("CERTIFICATE", der)).into_bytes(),
        key_pem: issuer.key_pem.clone().into_bytes(),
    };
    let now = SystemTime::now();
    let anchors = TrustAnchors::from_pem(root.cert_pem.as_bytes(), now).unwrap();
    let probe = LeafNames {
        dns: vec![linkerd_name("shop", "web")],
        uri: None,
    };
    let Err(err) = Issuer::load(&material, &anchors, &probe, now) else {
        panic!("an issuer rcgen cannot encode was accepted");
    };
    assert!(err.to_string().contains("attribute type"), "{err}");
}
