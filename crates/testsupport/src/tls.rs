//! TLS clients as the meshes' proxies make them: a raw rustls config (own roots, ALPN or
//! not, optional client certificate) and a gRPC channel over it.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

/// A raw rustls client: trusts only `root_der`, optional ALPN `h2` and client certificate.
pub fn rustls_client(
    root_der: &[u8],
    alpn: bool,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root_der.to_vec())).unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut cfg = match client_cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    if alpn {
        cfg.alpn_protocols = vec![b"h2".to_vec()];
    }
    Arc::new(cfg)
}

/// A gRPC channel over a TLS connection to `addr` made by `cfg`, verifying `server_name`
/// (h2 prior knowledge when no ALPN was offered).
pub async fn channel_over(
    addr: SocketAddr,
    server_name: &'static str,
    cfg: Arc<rustls::ClientConfig>,
) -> Channel {
    let connector = tower::service_fn(move |_: Uri| {
        let cfg = cfg.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let name = ServerName::try_from(server_name).unwrap();
            let tls = TlsConnector::from(cfg).connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Endpoint::from_static("http://certmint.invalid")
        .connect_with_connector(connector)
        .await
        .unwrap()
}
