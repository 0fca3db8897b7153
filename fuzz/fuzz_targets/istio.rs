//! An Istio CreateCertificate call from fuzz bytes (one length byte, that many bytes of
//! `authorization` header value, then an `IstioCertificateRequest`) through the Istio
//! translation, the pipeline and the status mapping, with the instant authenticator of
//! the `certify` target. An issued chain must name exactly the token's SPIFFE ID and end
//! in the anchor bundle.

#![no_main]

use std::sync::OnceLock;

use certmint_grpc::IstioService;
use certmint_core::ca::cert::to_pem;
use certmint_core::identity::ServiceAccount;
use certmint_grpc::proto::istio::IstioCertificateRequest;
use certmint_grpc::proto::istio::istio_certificate_service_server::IstioCertificateService;
use certmint_fuzz::{ca_store, call_handler, naming, runtime};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::metadata::MetadataValue;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

struct Fixture {
    rt: tokio::runtime::Runtime,
    service: IstioService,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = runtime();
        let calls = call_handler(&rt, certmint_grpc::metrics::Api::Istio);
        let service = IstioService::new(calls, vec!["Kubernetes".into()]);
        Fixture { rt, service }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (auth, body) = rest.split_at(usize::from(n).min(rest.len()));
    let Ok(req) = IstioCertificateRequest::decode(body) else {
        return;
    };
    let f = fixture();
    let mut request = tonic::Request::new(req);
    if let Ok(v) = MetadataValue::try_from(auth) {
        request.metadata_mut().insert("authorization", v);
    }
    request
        .metadata_mut()
        .insert("clusterid", MetadataValue::from_static("Kubernetes"));
    let Ok(resp) = f.rt.block_on(f.service.create_certificate(request)) else {
        return;
    };
    let chain = resp.into_inner().cert_chain;
    // Issued means: a Bearer token proved a service account, and the chain is leaf,
    // issuer, anchors, with the leaf naming that account's SPIFFE ID and nothing else.
    let token = std::str::from_utf8(auth).expect("issued for an ASCII header");
    let (_, token) = token.split_once(' ').expect("Bearer TOKEN");
    let (ns, name) = token.trim().split_once('/').expect("ns/name token");
    let sa = ServiceAccount::new(ns, name).expect("service account");
    assert_eq!(chain.len(), 3);
    let state = ca_store().load().expect("issuer");
    let anchors: String = state.anchors.certs().iter().map(|a| to_pem(&a.der)).collect();
    assert_eq!(chain[2], anchors);
    let leaf_der = pem::parse(&chain[0]).expect("leaf PEM").into_contents();
    let (_, leaf) = X509Certificate::from_der(&leaf_der).expect("leaf parses");
    let san = leaf
        .subject_alternative_name()
        .expect("SAN")
        .expect("SAN present");
    let spiffe = naming().spiffe_id(&sa);
    assert_eq!(san.value.general_names, vec![GeneralName::URI(&spiffe)]);
    let life = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert!(life <= 86_400 + 20, "lifetime {life}");
});
