//! Istio's CA API (`IstioCertificateService/CreateCertificate`) on the same TLS port as
//! Linkerd's Certify: ztunnel- and sidecar-shaped requests, the SPIFFE-only leaf checked by
//! parsing the DER, the chain order with the roots last, verified with rustls-webpki,
//! lifetime clamping, per-API audiences, cluster IDs, names and impersonation refusals.

use certmint_testsupport as common;
use certmint_testsupport::istio_client;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use common::pki::Ca;
use common::tls::{channel_over, rustls_client};
use common::*;
use istio_client::{Call, sidecar_csr, ztunnel_csr};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use tonic::Code;
use tonic::transport::Channel;
use x509_parser::prelude::*;

const LINKERD_NAME: &str = "certmint.linkerd.serviceaccount.identity.linkerd.cluster.local";
/// The name Istio's clients dial here (`tls.extra_names`).
const ISTIO_NAME: &str = "localhost";
const ISTIO_AUDIENCE: &str = "istio-ca";

struct Shared {
    grpc: SocketAddr,
    admin: SocketAddr,
    files: CaFiles,
    root: Ca,
    issuer_der: Vec<u8>,
    audit_file: std::path::PathBuf,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let (files, root, issuer) = CaFiles::with_ca("istio root", "istio issuer");
        let audit_file = files.dir.path().join("audit.jsonl");
        let mut c = files.config();
        c.tls.enabled = true;
        c.tls.extra_names = vec![ISTIO_NAME.into()];
        c.istio.enabled = true;
        c.audit.enabled = true;
        c.audit.file = Some(certmint_audit::config::FileSinkConfig {
            path: audit_file.clone(),
            max_size: 64 * 1024 * 1024,
            keep: 1,
        });
        let (grpc, admin) = background_server(c);
        Shared {
            grpc,
            admin,
            files,
            root,
            issuer_der: issuer.der,
            audit_file,
        }
    })
}

/// A TLS channel as ztunnel opens it (ALPN h2) or as Istio's Go agent may (none).
async fn istio_channel(alpn: bool) -> Channel {
    let s = shared();
    channel_over(s.grpc, ISTIO_NAME, rustls_client(&s.root.der, alpn, None)).await
}

fn istio_token(ns: &str, sa: &str) -> String {
    let key = &shared().files.token_key;
    key.token_with(ns, sa, ISTIO_AUDIENCE, TOKEN_ISSUER, 3600)
}

async fn create(call: Call) -> Result<Vec<String>, tonic::Status> {
    call.send(istio_channel(true).await).await
}

async fn code_of(call: Call) -> Code {
    match create(call).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// A call for `shop/web` with its own token and a ztunnel CSR naming `uris`.
fn web_call(uris: &[&str]) -> Call {
    Call::new(ztunnel_csr(uris), istio_token("shop", "web"))
}

fn der_of(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Checks the chain as ztunnel reads it and returns the leaf's DER.
fn check_chain(chain: &[String]) -> CertificateDer<'static> {
    let s = shared();
    assert_eq!(chain.len(), 3, "leaf, issuer, roots");
    assert!(chain.iter().all(|e| e.ends_with('\n')), "{chain:?}");
    let leaf = der_of(&chain[0]);
    assert_eq!(leaf.len(), 1, "the first entry is the leaf alone");
    assert_eq!(der_of(&chain[1])[0].as_ref(), s.issuer_der.as_slice());
    let roots = der_of(&chain[2]);
    assert_eq!(roots.len(), 1);
    assert_eq!(
        roots[0].as_ref(),
        s.root.der.as_slice(),
        "the root comes last"
    );
    common::pki::verify_both_roles(&leaf[0], &der_of(&chain[1]), &roots);
    leaf[0].clone()
}

/// The leaf names only `uri`: no subject, no DNS SAN, a critical SAN extension.
fn check_spiffe_only(leaf: &X509Certificate<'_>, uri: &str) {
    assert_eq!(leaf.subject().iter().count(), 0, "empty subject");
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert!(san.critical, "SAN must be critical with an empty subject");
    assert_eq!(san.value.general_names, vec![GeneralName::URI(uri)]);
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!leaf.is_ca());
}

fn lifetime(leaf: &X509Certificate<'_>) -> i64 {
    leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp()
}

const SKEW: i64 = 20;

#[tokio::test]
async fn ztunnel_shaped_request_gets_a_spiffe_leaf_then_issuer_then_roots() {
    let web = spiffe_id("shop", "web");
    let chain = create(web_call(&[&web])).await.unwrap();
    let leaf_der = check_chain(&chain);
    let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
    check_spiffe_only(&leaf, &web);
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_encipherment());
    assert_eq!(lifetime(&leaf), 86_400 + SKEW);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        leaf.validity().not_before.timestamp() <= now,
        "never in the future"
    );
}

#[tokio::test]
async fn sidecar_shaped_rsa_request_is_served_over_tls_without_alpn() {
    let web = spiffe_id("shop", "web");
    let call = Call::new(sidecar_csr(&web), istio_token("shop", "web"));
    let chain = call.send(istio_channel(false).await).await.unwrap();
    let leaf_der = check_chain(&chain);
    let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
    check_spiffe_only(&leaf, &web);
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(
        ku.digital_signature() && ku.key_encipherment(),
        "RSA keys get keyEncipherment"
    );
}

#[tokio::test]
async fn requested_lifetime_is_clamped_to_the_configured_maximum() {
    let web = spiffe_id("shop", "web");
    for (asked, expected) in [
        (3_600, 3_600),
        (10 * 86_400, 86_400),
        (0, 86_400),
        (-5, 86_400),
        (5, 60),
    ] {
        let mut call = web_call(&[&web]);
        call.validity = asked;
        let chain = create(call).await.unwrap();
        let leaf_der = der_of(&chain[0]).remove(0);
        let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
        assert_eq!(lifetime(&leaf), expected + SKEW, "asked for {asked} s");
    }
}

#[tokio::test]
async fn each_api_accepts_only_its_own_token_audience() {
    let s = shared();
    let web = spiffe_id("shop", "web");
    let linkerd_token = s.files.token_key.token("shop", "web");
    let call = Call::new(ztunnel_csr(&[&web]), linkerd_token);
    assert_eq!(code_of(call).await, Code::Unauthenticated);
    // And an Istio token does not get a Linkerd certificate.
    let id = linkerd_name("shop", "web");
    let ch = channel_over(
        s.grpc,
        LINKERD_NAME,
        rustls_client(&s.root.der, false, None),
    )
    .await;
    let mut c = linkerd2_proxy_api::identity::identity_client::IdentityClient::new(ch);
    let csr = CsrSpec::for_identity(&id).build(&rcgen::KeyPair::generate().unwrap());
    let err = certify(&mut c, &id, istio_token("shop", "web"), csr.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // The Linkerd API still serves its own clients on the same port.
    let ok = certify(&mut c, &id, s.files.token_key.token("shop", "web"), csr).await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn cluster_id_must_be_one_this_ca_serves() {
    let web = spiffe_id("shop", "web");
    let mut call = web_call(&[&web]);
    call.cluster_id = Some("other-cluster");
    let err = create(call).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("cluster ID"), "{}", err.message());
    let mut call = web_call(&[&web]);
    call.cluster_id = None;
    assert_eq!(
        code_of(call).await,
        Code::Ok,
        "no cluster ID means this cluster"
    );
}

#[tokio::test]
async fn csr_must_name_exactly_the_callers_own_spiffe_id() {
    let web = spiffe_id("shop", "web");
    let db = spiffe_id("shop", "db");
    let foreign = "spiffe://other.domain/ns/shop/sa/web";
    for (uris, what) in [
        (vec![db.as_str()], "another workload's identity"),
        (vec![foreign], "another trust domain"),
        (vec![web.as_str(), db.as_str()], "two URIs"),
        (vec![], "no SAN"),
    ] {
        assert_eq!(
            code_of(web_call(&uris)).await,
            Code::PermissionDenied,
            "{what}"
        );
    }
    // A DNS SAN next to the right URI is refused too: the leaf carries only the URI.
    let mut p = rcgen::CertificateParams::new(vec!["web.shop.svc".to_owned()]).unwrap();
    p.subject_alt_names
        .push(rcgen::SanType::URI(web.clone().try_into().unwrap()));
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = p.serialize_request(&key).unwrap().pem().unwrap();
    let call = Call::new(csr, istio_token("shop", "web"));
    assert_eq!(code_of(call).await, Code::PermissionDenied);
}

#[tokio::test]
async fn malformed_requests_get_exact_codes() {
    let web = spiffe_id("shop", "web");
    let mut call = web_call(&[&web]);
    call.token = None;
    assert_eq!(code_of(call).await, Code::Unauthenticated, "no token");
    let mut call = web_call(&[&web]);
    call.token = Some(String::new());
    assert_eq!(
        code_of(call).await,
        Code::Unauthenticated,
        "Bearer and nothing"
    );
    let call = Call::new("not pem".into(), istio_token("shop", "web"));
    assert_eq!(code_of(call).await, Code::InvalidArgument, "not PEM");
    let cert_pem = shared().root.cert_pem.clone();
    let call = Call::new(cert_pem, istio_token("shop", "web"));
    assert_eq!(
        code_of(call).await,
        Code::InvalidArgument,
        "a certificate, not a CSR"
    );
    let mut call = web_call(&[&web]);
    call.impersonate = Some(prost_types::Value {
        kind: Some(prost_types::value::Kind::NumberValue(1.0)),
    });
    assert_eq!(
        code_of(call).await,
        Code::InvalidArgument,
        "non-string metadata"
    );
    let mut call = web_call(&[&web]);
    call.csr = call.csr.replace("REQUEST-----\nMI", "REQUEST-----\nMX");
    assert_eq!(code_of(call).await, Code::InvalidArgument, "corrupt DER");
}

#[tokio::test]
async fn impersonation_is_refused_without_trusted_node_accounts_but_self_is_fine() {
    let db = spiffe_id("shop", "db");
    let call = Call::new(ztunnel_csr(&[&db]), istio_token("shop", "web")).on_behalf_of(&db);
    let err = create(call).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // ztunnel in shared mode names itself in ImpersonatedIdentity too.
    let web = spiffe_id("shop", "web");
    let call = web_call(&[&web]).on_behalf_of(&web);
    assert_eq!(code_of(call).await, Code::Ok);
    // The CSR must name the identity asked for.
    let call = web_call(&[&db]).on_behalf_of(&web);
    assert_eq!(code_of(call).await, Code::PermissionDenied);
}

#[tokio::test]
async fn metrics_and_audit_records_say_api_istio() {
    let s = shared();
    let web = spiffe_id("shop", "web");
    create(web_call(&[&web])).await.unwrap();
    let (code, body) = admin_get(s.admin, "/metrics").await;
    assert_eq!(code, 200);
    let ok_line = body
        .lines()
        .find(|l| {
            l.contains("certify_requests_total{")
                && l.contains("api=\"istio\"")
                && l.contains("result=\"ok\"")
        })
        .unwrap_or_else(|| panic!("no istio ok series in {body}"));
    let count: f64 = ok_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{ok_line}");
    let path = &s.audit_file;
    let mut records = Vec::new();
    eventually(
        Duration::from_secs(10),
        "an istio audit record",
        async || {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            records = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|r| r["api"] == "istio" && r["code"] == "OK")
                .collect();
            !records.is_empty()
        },
    )
    .await;
    let r = &records[0];
    assert_eq!(r["identity"], web.as_str());
    assert_eq!(r["caller"]["service_account"], "web");
    assert!(r["cert"]["serial"].as_str().is_some());
}
