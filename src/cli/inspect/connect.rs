//! The chain a TLS server presents, recorded without trusting it: the handshake accepts any
//! chain (still checking the server's handshake signature, i.e. that it holds the key), and
//! `inspect` verifies the chain afterwards so it can say why it does not verify.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::{ClientConfig, DigitallySignedStruct, ProtocolVersion, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What was negotiated.
#[derive(Debug, Serialize)]
pub struct TlsInfo {
    pub address: String,
    pub server_name: String,
    pub version: String,
    pub cipher_suite: String,
    pub alpn: Option<String>,
}

/// Connects to `target` (HOST:PORT) with SNI `server_name` (default: the host) and returns
/// the presented chain, leaf first.
pub async fn presented_chain(
    target: &str,
    server_name: Option<&str>,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, TlsInfo)> {
    let (host, port) = split_host_port(target)?;
    let name = server_name.unwrap_or(host);
    let sni = ServerName::try_from(name.to_owned())
        .map_err(|_| anyhow!("server name {name:?} is neither a DNS name nor an IP address"))?;
    let connector = TlsConnector::from(client_config()?);
    let handshake = async {
        let tcp = TcpStream::connect((host, port))
            .await
            .with_context(|| format!("cannot connect to {target}"))?;
        connector
            .connect(sni, tcp)
            .await
            .with_context(|| format!("TLS handshake with {target} failed; is it a TLS port?"))
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| anyhow!("no TLS handshake with {target} within 10s"))??;
    let (_, conn) = stream.get_ref();
    let chain: Vec<_> = conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    if chain.is_empty() {
        bail!("{target} presented no certificate");
    }
    let info = TlsInfo {
        address: target.to_owned(),
        server_name: name.to_owned(),
        version: conn.protocol_version().map_or("?".into(), version_text),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .map_or("?".into(), |s| format!("{:?}", s.suite())),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    };
    Ok((chain, info))
}

fn split_host_port(target: &str) -> anyhow::Result<(&str, u16)> {
    let usage =
        || anyhow!("--connect {target:?}: expected HOST:PORT, e.g. certmint.certmint.svc:8080");
    let (host, port) = target.rsplit_once(':').ok_or_else(usage)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().map_err(|_| usage())?;
    if host.is_empty() {
        return Err(usage());
    }
    Ok((host, port))
}

fn client_config() -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(AcceptAnyChain {
        algs: provider.signature_verification_algorithms,
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn version_text(v: ProtocolVersion) -> String {
    match v {
        ProtocolVersion::TLSv1_3 => "TLS 1.3".into(),
        ProtocolVersion::TLSv1_2 => "TLS 1.2".into(),
        other => format!("{other:?}"),
    }
}

/// Accepts whatever chain the server sends (it is verified and reported afterwards), but
/// still requires a valid handshake signature from the leaf's key.
#[derive(Debug)]
struct AcceptAnyChain {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyChain {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_host_and_port() {
        assert_eq!(split_host_port("a.svc:8080").unwrap(), ("a.svc", 8080));
        assert_eq!(split_host_port("[::1]:443").unwrap(), ("::1", 443));
        assert!(split_host_port("a.svc").is_err());
        assert!(split_host_port(":80").is_err());
        assert!(split_host_port("a:port").is_err());
    }
}
