//! Production serving (DESIGN.md §7): self-issued TLS as linkerd2-proxy meets it, health,
//! reflection and message limits.

use certmint_testsupport as common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use certmint::app::Server;
use common::pki::Ca;
use common::tls::{channel_over, rustls_client};
use common::*;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use rcgen::KeyPair;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::TlsConnector;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

const SERVER_NAME: &str = "certmint.linkerd.serviceaccount.identity.linkerd.cluster.local";
const WAIT: Duration = Duration::from_secs(20);

struct Tls {
    files: CaFiles,
    root: Ca,
    server: Server,
}

async fn start_tls(clock: Option<TestClock>) -> Tls {
    install_crypto();
    let files = CaFiles::new();
    let root = Ca::root("root");
    let issuer = root.issuer("issuer one");
    files.write_anchors(&root.cert_pem);
    files.write_issuer(&issuer.cert_pem, &issuer.key_pem);
    let mut config = files.config();
    config.tls.enabled = true;
    let server = match clock {
        Some(c) => Server::start_with_clock(config, Arc::new(c)).await.unwrap(),
        None => Server::start(config).await.unwrap(),
    };
    let s = &server;
    eventually(WAIT, "ready with a serving certificate", async || {
        s.readiness.check().is_ok()
    })
    .await;
    Tls {
        files,
        root,
        server,
    }
}

async fn certify_over(
    files: &CaFiles,
    ch: Channel,
) -> Result<linkerd2_proxy_api::identity::CertifyResponse, tonic::Status> {
    let id = linkerd_name("shop", "web");
    let key = KeyPair::generate().unwrap();
    let mut c = IdentityClient::new(ch);
    certify(
        &mut c,
        &id,
        files.token_key.token("shop", "web"),
        CsrSpec::for_identity(&id).build(&key),
    )
    .await
}

#[tokio::test]
async fn tls_clients_like_linkerd2_proxy_get_certificates() {
    let t = start_tls(None).await;
    let addr = t.server.grpc_addr;

    // tonic's own TLS client: anchors only, server name verified, ALPN h2.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&t.root.cert_pem))
        .domain_name(SERVER_NAME);
    let ch = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let first = certify_over(&t.files, ch).await.unwrap();

    // No ALPN at all (what linkerd2-proxy offers).
    certify_over(
        &t.files,
        channel_over(addr, SERVER_NAME, rustls_client(&t.root.der, false, None)).await,
    )
    .await
    .unwrap();

    // A renewing proxy presents its current leaf as a client certificate.
    let key = KeyPair::generate().unwrap();
    let id = linkerd_name("shop", "web");
    let mut c = IdentityClient::new(
        channel_over(addr, SERVER_NAME, rustls_client(&t.root.der, false, None)).await,
    );
    let leaf = certify(
        &mut c,
        &id,
        t.files.token_key.token("shop", "web"),
        CsrSpec::for_identity(&id).build(&key),
    )
    .await
    .unwrap();
    let chain = vec![
        CertificateDer::from(leaf.leaf_certificate),
        CertificateDer::from(leaf.intermediate_certificates[0].clone()),
    ];
    let pk = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    certify_over(
        &t.files,
        channel_over(
            addr,
            SERVER_NAME,
            rustls_client(&t.root.der, false, Some((chain, pk))),
        )
        .await,
    )
    .await
    .unwrap();
    assert!(!first.leaf_certificate.is_empty());

    // A client that does not trust the anchors cannot connect.
    let stranger = Ca::root("stranger");
    let cfg = rustls_client(&stranger.der, true, None);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let err = TlsConnector::from(cfg)
        .connect(ServerName::try_from(SERVER_NAME).unwrap(), tcp)
        .await;
    assert!(err.is_err(), "handshake must fail without the anchors");
}

/// The serving certificate chain a fresh TLS handshake sees.
async fn serving_chain(addr: SocketAddr, root: &Ca) -> Vec<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(rustls_client(&root.der, true, None))
        .connect(ServerName::try_from(SERVER_NAME).unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref()
        .1
        .peer_certificates()
        .unwrap()
        .iter()
        .map(|c| c.to_vec())
        .collect()
}

#[tokio::test]
async fn serving_certificate_follows_issuer_rotation() {
    let t = start_tls(None).await;
    let chain = serving_chain(t.server.grpc_addr, &t.root).await;
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert!(
        san.value
            .general_names
            .contains(&x509_parser::extensions::GeneralName::DNSName(SERVER_NAME))
    );
    assert!(
        leaf.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .server_auth
    );

    let two = t.root.issuer("issuer two");
    t.files.write_issuer(&two.cert_pem, &two.key_pem);
    let (addr, root) = (t.server.grpc_addr, &t.root);
    eventually(
        WAIT,
        "a serving certificate from the new issuer",
        async || serving_chain(addr, root).await.get(1) == Some(&two.der),
    )
    .await;
}

#[tokio::test]
async fn health_is_not_serving_once_the_issuer_expires() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let clock = TestClock::new();
    let t = start_tls(Some(clock.clone())).await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&t.root.cert_pem))
        .domain_name(SERVER_NAME);
    let ch = Endpoint::from_shared(format!("https://{}", t.server.grpc_addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = HealthClient::new(ch);
    let status = async |service: &str| {
        let req = HealthCheckRequest {
            service: service.into(),
        };
        health.clone().check(req).await.unwrap().into_inner().status
    };
    eventually(WAIT, "SERVING", async || {
        status("").await == ServingStatus::Serving as i32
    })
    .await;
    assert_eq!(
        status("io.linkerd.proxy.identity.Identity").await,
        ServingStatus::Serving as i32
    );
    clock.advance(Duration::from_secs(400 * 86400));
    eventually(WAIT, "NOT_SERVING", async || {
        status("").await == ServingStatus::NotServing as i32
    })
    .await;
    assert_eq!(
        status("io.linkerd.proxy.identity.Identity").await,
        ServingStatus::NotServing as i32
    );
}

#[tokio::test]
async fn reflection_lists_the_identity_service_and_oversized_messages_are_refused() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let files = CaFiles::new();
    let root = Ca::root("root");
    let issuer = root.issuer("issuer");
    files.write_anchors(&root.cert_pem);
    files.write_issuer(&issuer.cert_pem, &issuer.key_pem);
    let server = files.start().await;
    let ch = Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::once(req))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"io.linkerd.proxy.identity.Identity"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

    let mut c = IdentityClient::new(ch);
    let err = certify(
        &mut c,
        &linkerd_name("shop", "web"),
        vec![b'x'; 100 * 1024],
        vec![0u8; 10],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
}
