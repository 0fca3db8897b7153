//! The fake API server's TLS identity (a throwaway CA and a server certificate for
//! 127.0.0.1 / localhost, generated at start) and the TLS listener axum serves from.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;

use super::conn::Conn;

/// The CA clients trust and the server configuration signed by it.
pub(crate) struct ServerTls {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    pub config: Arc<ServerConfig>,
}

/// Generates a fresh CA and a server certificate valid for one day.
pub(crate) fn generate() -> ServerTls {
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().expect("generate CA key");
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name("fake-kube CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.serial_number = Some(SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(1);
    let ca_cert = ca.self_signed(&ca_key).expect("self-sign CA");

    let server_key = KeyPair::generate().expect("generate server key");
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
    server
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    server.distinguished_name = name("kube-apiserver");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.serial_number = Some(SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
    server.use_authority_key_identifier_extension = true;
    server.not_before = ca.not_before;
    server.not_after = ca.not_after;
    let issuer = Issuer::new(ca, ca_key);
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .expect("sign server cert");

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let chain = vec![server_cert.der().clone(), ca_cert.der().clone()];
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server TLS config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    ServerTls {
        ca_pem: ca_cert.pem(),
        ca_der: CertificateDer::as_ref(ca_cert.der()).to_vec(),
        config: Arc::new(config),
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Accepted, handshaken connections, handed to `axum::serve`.
pub(crate) struct TlsListener {
    incoming: mpsc::Receiver<(Conn, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts TCP connections on `tcp` and runs each TLS handshake in its own task, so a
    /// slow or broken client never holds up the others. The returned task is the acceptor.
    pub(crate) fn spawn(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        shutdown: watch::Receiver<bool>,
        mut refuse: watch::Receiver<bool>,
    ) -> (TlsListener, JoinHandle<()>) {
        let local = tcp.local_addr().expect("local address");
        let (tx, incoming) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            let mut tcp = Some(tcp);
            loop {
                let listener = match tcp.take() {
                    Some(l) => l,
                    // After an outage: listen on the same port again.
                    None => match TcpListener::bind(local).await {
                        Ok(l) => l,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    },
                };
                loop {
                    let accepted = tokio::select! {
                        a = listener.accept() => a,
                        _ = refuse.wait_for(|r| *r) => break,
                    };
                    let Ok((stream, peer)) = accepted else { return };
                    let (acceptor, tx) = (acceptor.clone(), tx.clone());
                    let (shutdown, refuse) = (shutdown.clone(), refuse.clone());
                    tokio::spawn(async move {
                        let handshake =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                        if let Ok(Ok(tls)) = handshake.await {
                            let _ = tx.send((Conn::new(tls, shutdown, refuse), peer)).await;
                        }
                    });
                }
                // Refusing: close the socket until the outage ends.
                drop(listener);
                if refuse.wait_for(|r| !*r).await.is_err() {
                    return;
                }
            }
        });
        (TlsListener { incoming, local }, task)
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.incoming.recv().await {
            Some(accepted) => accepted,
            // The acceptor is gone (shut down): never hand out another connection.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
