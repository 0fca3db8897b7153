//! `certmint dev`: a complete local CA with throwaway credentials, and `dev token`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::app::Server;
use crate::config::{AuthnMode, Config, LogFormat, SourceKind, parse_duration};
use certmint_core::ca::create::{KeyType, generate_key, new_issuer, new_root};
use certmint_core::fsutil::write_private;

/// The `iss` of tokens minted by `certmint dev token`.
pub const DEV_TOKEN_ISSUER: &str = "certmint-dev";
const DEFAULT_DIR: &str = "./certmint-dev";

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DevArgs {
    #[command(subcommand)]
    token: Option<DevCommand>,
    /// Directory for the throwaway anchor, issuer and token-signing key (reused if present).
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Admin HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:9990")]
    admin_listen: SocketAddr,
    /// Serve TLS with a self-issued certificate instead of plaintext.
    #[arg(long)]
    tls: bool,
    /// With both: the issuer's tls.key in DIR may be a `pkcs11:` URI of a key in a token
    /// (docs/operations.md §12).
    #[command(flatten)]
    hsm: crate::cli::hsm::HsmArgs,
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Print a service-account token signed by the dev token key.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
struct TokenArgs {
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
    #[arg(long)]
    namespace: String,
    #[arg(long)]
    service_account: String,
    #[arg(long, default_value = "identity.l5d.io")]
    audience: String,
    /// Token lifetime, e.g. 1h or 10m.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    ttl: Duration,
}

/// The files `certmint dev` keeps in its directory.
pub struct DevPaths {
    pub anchors: PathBuf,
    pub anchor_key: PathBuf,
    pub issuer_dir: PathBuf,
    pub token_key: PathBuf,
    pub token_pub: PathBuf,
}

impl DevPaths {
    pub fn new(dir: &Path) -> Self {
        Self {
            anchors: dir.join("trust-anchors.pem"),
            anchor_key: dir.join("trust-anchor.key"),
            issuer_dir: dir.join("issuer"),
            token_key: dir.join("token-signing.key"),
            token_pub: dir.join("token-signing.pub"),
        }
    }
}

pub async fn run(args: DevArgs, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    if let Some(DevCommand::Token(t)) = args.token {
        println!(
            "{}",
            mint_token(
                &DevPaths::new(&t.dir),
                &t.namespace,
                &t.service_account,
                &t.audience,
                t.ttl
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    crate::telemetry::init(log_format);
    let paths = DevPaths::new(&args.dir);
    ensure_material(&paths)?;
    let mut config = dev_config(&paths, args.listen, args.admin_listen, args.tls);
    config.hsm = args.hsm.config();
    let server = Server::start(config).await?;
    print_instructions(
        &args.dir,
        &paths,
        server.grpc_addr,
        server.admin_addr,
        args.tls,
    );
    server.run_until_signal().await?;
    Ok(ExitCode::SUCCESS)
}

/// The serve configuration `dev` uses.
pub fn dev_config(paths: &DevPaths, listen: SocketAddr, admin: SocketAddr, tls: bool) -> Config {
    let mut c = Config {
        listen,
        admin_listen: admin,
        ..Config::default()
    };
    c.issuer.source = SourceKind::Files;
    c.issuer.dir = paths.issuer_dir.clone();
    c.trust_anchors.source = SourceKind::Files;
    c.trust_anchors.file = paths.anchors.clone();
    c.authn.mode = AuthnMode::Jwt;
    c.authn.jwt.keys = vec![paths.token_pub.clone()];
    c.authn.jwt.issuers = vec![DEV_TOKEN_ISSUER.into()];
    c.tls.enabled = tls;
    // Istio's clients dial the CA by name and check it: https://localhost:PORT.
    c.tls.extra_names = vec!["localhost".into()];
    c.istio.enabled = true;
    c
}

/// Creates the anchor, issuer and token key when absent; existing files are reused.
pub fn ensure_material(paths: &DevPaths) -> anyhow::Result<()> {
    std::fs::create_dir_all(&paths.issuer_dir)?;
    let now = SystemTime::now();
    if !paths.anchors.exists() {
        let root = new_root(
            "certmint dev trust anchor",
            Duration::from_secs(10 * 365 * 86400),
            generate_key(KeyType::P256)?,
            now,
        )?;
        std::fs::write(&paths.anchors, &root.cert_pem)?;
        write_private(&paths.anchor_key, root.key_pem.as_bytes())?;
        // A new anchor invalidates any old issuer.
        let _ = std::fs::remove_file(paths.issuer_dir.join("tls.crt"));
    }
    if !paths.issuer_dir.join("tls.crt").exists() {
        let ca_cert = std::fs::read_to_string(&paths.anchors)?;
        let ca_key = std::fs::read_to_string(&paths.anchor_key)?;
        let issuer = new_issuer(
            &ca_cert,
            &ca_key,
            "certmint dev issuer",
            Duration::from_secs(365 * 86400),
            0,
            generate_key(KeyType::P256)?,
            now,
        )?;
        write_private(&paths.issuer_dir.join("tls.key"), issuer.key_pem.as_bytes())?;
        std::fs::write(paths.issuer_dir.join("tls.crt"), &issuer.cert_pem)?;
    }
    if !paths.token_key.exists() || !paths.token_pub.exists() {
        let key = generate_key(KeyType::P256)?;
        write_private(&paths.token_key, key.serialize_pem().as_bytes())?;
        std::fs::write(&paths.token_pub, key.public_key_pem())?;
    }
    Ok(())
}

#[derive(Serialize)]
struct DevClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: Vec<&'a str>,
    iat: u64,
    nbf: u64,
    exp: u64,
    #[serde(rename = "kubernetes.io")]
    kubernetes: DevK8s<'a>,
}

#[derive(Serialize)]
struct DevK8s<'a> {
    namespace: &'a str,
    serviceaccount: DevSa<'a>,
}

#[derive(Serialize)]
struct DevSa<'a> {
    name: &'a str,
}

/// Mints a projected-style service-account token with the dev token key.
pub fn mint_token(
    paths: &DevPaths,
    ns: &str,
    sa: &str,
    audience: &str,
    ttl: Duration,
) -> anyhow::Result<String> {
    certmint_core::identity::ServiceAccount::new(ns, sa)?;
    let key_pem = std::fs::read(&paths.token_key).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: {e}; run `certmint dev` first",
            paths.token_key.display()
        )
    })?;
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&key_pem)?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs();
    let claims = DevClaims {
        iss: DEV_TOKEN_ISSUER,
        sub: format!("system:serviceaccount:{ns}:{sa}"),
        aud: vec![audience],
        iat: now,
        nbf: now,
        exp: now + ttl.as_secs(),
        kubernetes: DevK8s {
            namespace: ns,
            serviceaccount: DevSa { name: sa },
        },
    };
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &key,
    )?)
}

fn print_instructions(
    dir: &Path,
    paths: &DevPaths,
    grpc: SocketAddr,
    admin: SocketAddr,
    tls: bool,
) {
    let exe = std::env::args().next().unwrap_or_else(|| "certmint".into());
    let dir = dir.display();
    let scheme = if tls { "https" } else { "http" };
    let tls_flag = if tls {
        " --server-name certmint.linkerd.serviceaccount.identity.linkerd.cluster.local"
    } else {
        ""
    };
    println!(
        "\ncertmint dev: CA ready on {scheme}://{grpc} (admin http://{admin}/ready)\n\
         Credentials in {dir}: trust-anchors.pem, issuer/tls.crt, token-signing.pub\n\n\
         Get a certificate for service account default/web:\n\n  \
         {exe} dev token --dir {dir} --namespace default --service-account web > web.token\n  \
         {exe} certify --addr {scheme}://{grpc}{tls_flag} --token-file web.token --namespace default --service-account web --trust-anchors {anchors} --out-dir web-cert\n\n\
         Istio's CA API is served on the same port (token audience istio-ca; with --tls, Istio\n\
         clients use CA_ADDRESS=https://localhost:{port} and CA_ROOT_CA={anchors}):\n\n  \
         {exe} dev token --dir {dir} --namespace default --service-account web --audience istio-ca | tr -d '\\n' > istio.token\n",
        port = grpc.port(),
        anchors = paths.anchors.display()
    );
}
