//! A Certify request from protobuf bytes through the whole pipeline (validate, CSR,
//! authenticate, sign) and the gRPC status mapping, with an instant authenticator: a
//! token `namespace/name` proves that service account, `unavailable` cannot be decided,
//! anything else is rejected.

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use certmint::authn::Token;
use certmint::ca::LeafPolicy;
use certmint::certify::Certifier;
use certmint::clock::SystemClock;
use certmint::grpc::{CallHandler, IdentityService};
use certmint::identity::ServiceAccount;
use certmint::metrics::Metrics;
use certmint::proto::CertifyRequest;
use certmint::proto::identity_server::Identity;
use certmint_fuzz::{InstantAuthn, ca_store, naming};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

struct Fixture {
    rt: tokio::runtime::Runtime,
    service: IdentityService,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let certifier = Certifier::new(
            ca_store().clone(),
            Arc::new(InstantAuthn),
            naming(),
            LeafPolicy::default(),
            Arc::new(SystemClock),
        );
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime"),
            service: IdentityService::new(Arc::new(CallHandler::new(
                "linkerd",
                Arc::new(certifier),
                Arc::new(Metrics::new()),
                Duration::from_secs(10),
            ))),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Ok(req) = CertifyRequest::decode(data) else {
        return;
    };
    let identity = req.identity.clone();
    let token = req.token.clone();
    let Ok(resp) = f.rt.block_on(f.service.certify(tonic::Request::new(req))) else {
        return;
    };
    let resp = resp.into_inner();
    assert!(!resp.intermediate_certificates.is_empty());
    assert!(resp.valid_until.is_some());
    // Issued means: the token proved exactly the requested identity, and the leaf names
    // that identity and nothing the CSR asked for.
    let proven = Token::from_bytes(&token).expect("issued for a usable token");
    let (ns, name) = proven.as_str().split_once('/').expect("ns/name token");
    let sa = ServiceAccount::new(ns, name).expect("service account");
    assert_eq!(naming().linkerd_name(&sa), identity);
    let (_, leaf) = X509Certificate::from_der(&resp.leaf_certificate).expect("leaf parses");
    let san = leaf
        .subject_alternative_name()
        .expect("SAN")
        .expect("SAN present");
    let dns: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|g| match g {
            GeneralName::DNSName(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert_eq!(dns, [identity.as_str()]);
});
