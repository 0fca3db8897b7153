//! A Certify request from protobuf bytes through the whole pipeline (validate, CSR,
//! authenticate, sign) and the gRPC status mapping, with an instant authenticator: a
//! token `namespace/name` proves that service account, `unavailable` cannot be decided,
//! anything else is rejected.

#![no_main]

use std::sync::OnceLock;

use certmint_core::authn::Token;
use certmint_grpc::IdentityService;
use certmint_core::identity::ServiceAccount;
use certmint_grpc::proto::CertifyRequest;
use certmint_grpc::proto::identity_server::Identity;
use certmint_fuzz::{call_handler, naming, runtime};
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
        let rt = runtime();
        let service = IdentityService::new(call_handler(&rt, certmint_grpc::metrics::Api::Linkerd));
        Fixture { rt, service }
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
