//! `certmint certify`: behave like a workload — key, CSR, Certify, verify, write files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls_pki_types::CertificateDer;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use certmint_core::ca::TrustAnchors;
use certmint_core::ca::cert::to_pem;
use certmint_core::ca::verify::verify_leaf;
use certmint_core::fsutil::{read_bounded, write_private};
use certmint_core::identity::{Naming, ServiceAccount};
use certmint_grpc::proto::CertifyRequest;
use certmint_grpc::proto::identity_client::IdentityClient;

#[derive(Debug, Args)]
pub struct CertifyArgs {
    /// The CA's address: http://HOST:PORT (plaintext) or https://HOST:PORT (TLS).
    #[arg(long)]
    addr: String,
    /// The service-account token file (sent as read).
    #[arg(long)]
    token_file: PathBuf,
    /// The identity to request; or give --namespace and --service-account.
    #[arg(long, conflicts_with_all = ["namespace", "service_account"])]
    identity: Option<String>,
    #[arg(long, requires = "service_account")]
    namespace: Option<String>,
    #[arg(long, requires = "namespace")]
    service_account: Option<String>,
    /// PEM bundle of trust anchors to verify the answer (and the TLS server) against.
    #[arg(long)]
    trust_anchors: PathBuf,
    /// Where tls.key, tls.crt and ca.crt are written.
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    /// The TLS name the server must present (defaults to the URL's host).
    #[arg(long)]
    server_name: Option<String>,
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    #[arg(long, default_value = "linkerd")]
    control_namespace: String,
    /// Keep renewing at 70 % of each certificate's lifetime.
    #[arg(long)]
    renew: bool,
}

/// A certificate obtained and verified.
pub struct Obtained {
    pub key_pem: String,
    pub leaf: CertificateDer<'static>,
    pub chain: Vec<CertificateDer<'static>>,
    pub not_after: SystemTime,
    pub serial: String,
}

pub async fn run(args: CertifyArgs) -> anyhow::Result<ExitCode> {
    let identity = requested_identity(&args)?;
    let anchors_pem = read_bounded(&args.trust_anchors, 1 << 20).map_err(|e| {
        anyhow::anyhow!(
            "cannot read --trust-anchors {}: {e}",
            args.trust_anchors.display()
        )
    })?;
    let channel = connect(&args.addr, &anchors_pem, args.server_name.as_deref()).await?;
    let mut backoff = Duration::from_secs(1);
    loop {
        let token = read_bounded(&args.token_file, 64 * 1024).map_err(|e| {
            anyhow::anyhow!(
                "cannot read --token-file {}: {e}",
                args.token_file.display()
            )
        })?;
        match obtain(channel.clone(), &identity, token, &anchors_pem).await {
            Ok(got) => {
                write_out(&args.out_dir, &got, &anchors_pem)?;
                println!(
                    "identity: {identity}\nserial:   {}\nexpires:  {}",
                    got.serial,
                    certmint_core::ca::fmt_time(got.not_after)
                );
                if !args.renew {
                    return Ok(ExitCode::SUCCESS);
                }
                backoff = Duration::from_secs(1);
                tokio::time::sleep(renew_after(got.not_after, SystemTime::now())).await;
            }
            Err(e) if args.renew => {
                eprintln!("certify failed: {e:#}; retrying in {}s", backoff.as_secs());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
            Err(e) => return Err(e),
        }
    }
}

/// 70 % of the remaining lifetime from `now`.
fn renew_after(not_after: SystemTime, now: SystemTime) -> Duration {
    not_after
        .duration_since(now)
        .unwrap_or_default()
        .mul_f64(0.7)
}

fn requested_identity(args: &CertifyArgs) -> anyhow::Result<String> {
    if let Some(id) = &args.identity {
        return Ok(id.clone());
    }
    let (Some(ns), Some(sa)) = (&args.namespace, &args.service_account) else {
        anyhow::bail!("give --identity, or --namespace and --service-account");
    };
    let naming = Naming::new(&args.control_namespace, &args.trust_domain)?;
    Ok(naming.linkerd_name(&ServiceAccount::new(ns, sa)?))
}

/// Opens a channel: plaintext for http://, TLS verified against the anchors for https://.
pub async fn connect(
    addr: &str,
    anchors_pem: &[u8],
    server_name: Option<&str>,
) -> anyhow::Result<Channel> {
    let mut ep = Endpoint::from_shared(addr.to_owned())
        .map_err(|e| anyhow::anyhow!("--addr {addr:?} is not a URL: {e}"))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30));
    if addr.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(anchors_pem));
        if let Some(name) = server_name {
            tls = tls.domain_name(name);
        }
        ep = ep.tls_config(tls)?;
    }
    ep.connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {e}; is the CA running?"))
}

/// Makes a P-256 key and CSR for `identity`, calls Certify and verifies the answer.
pub async fn obtain(
    channel: Channel,
    identity: &str,
    token: Vec<u8>,
    anchors_pem: &[u8],
) -> anyhow::Result<Obtained> {
    let key = KeyPair::generate()?;
    let csr = csr_for(identity, &key)?;
    let resp = IdentityClient::new(channel)
        .certify(CertifyRequest {
            identity: identity.to_owned(),
            token: token.into(),
            certificate_signing_request: csr.into(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("Certify failed: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    let leaf = CertificateDer::from(resp.leaf_certificate.to_vec());
    let chain: Vec<_> = resp
        .intermediate_certificates
        .into_iter()
        .map(|b| CertificateDer::from(b.to_vec()))
        .collect();
    let valid_until = resp
        .valid_until
        .ok_or_else(|| anyhow::anyhow!("response has no valid_until"))?;
    let not_after = SystemTime::try_from(valid_until)
        .map_err(|_| anyhow::anyhow!("valid_until out of range"))?;
    let now = SystemTime::now();
    let anchors = TrustAnchors::from_pem(anchors_pem, now)?;
    verify_leaf(&leaf, &chain, &anchors, Some(identity), now)
        .map_err(|e| anyhow::anyhow!("the returned certificate does not verify: {e}"))?;
    let info = certmint_core::ca::cert::CertInfo::parse(leaf.clone(), 0)?;
    if info.not_after != not_after {
        anyhow::bail!("valid_until does not match the leaf's notAfter");
    }
    Ok(Obtained {
        key_pem: key.serialize_pem(),
        serial: info.serial_hex,
        leaf,
        chain,
        not_after,
    })
}

/// A DER CSR as linkerd2-proxy makes one: CN and one DNS SAN, both the identity.
pub fn csr_for(identity: &str, key: &KeyPair) -> anyhow::Result<Vec<u8>> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, identity);
    params.subject_alt_names = vec![SanType::DnsName(identity.to_owned().try_into()?)];
    Ok(params.serialize_request(key)?.der().to_vec())
}

fn write_out(dir: &Path, got: &Obtained, anchors_pem: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut chain = to_pem(&got.leaf);
    for c in &got.chain {
        chain.push_str(&to_pem(c));
    }
    write_private(&dir.join("tls.key"), got.key_pem.as_bytes())?;
    std::fs::write(dir.join("tls.crt"), chain)?;
    std::fs::write(dir.join("ca.crt"), anchors_pem)?;
    Ok(())
}
