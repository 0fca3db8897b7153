//! The audit files the trail tests work on, made once per test binary by real servers:
//! replica r-a (Ed25519-signed checkpoints every 3 records; issued, refused, cached),
//! replica r-b (ECDSA-signed) and replica r-c (rotated every 4 KiB, unsigned).

use std::path::PathBuf;
use std::sync::OnceLock;

use certmint::app::Server;
use certmint_audit::OnFailure;
use rcgen::KeyPair;
use tonic::Code;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::audit::*;
use crate::*;

pub struct Issued {
    pub serial: String,
    pub leaf: Vec<u8>,
    pub issuer: Vec<u8>,
}

pub struct Golden {
    pub dir: tempfile::TempDir,
    /// Replica r-a: signed with `key_a` (Ed25519), a checkpoint every 3 records.
    pub a: PathBuf,
    /// Replica r-b: signed with `key_b` (ECDSA P-256).
    pub b: PathBuf,
    /// Replica r-c: rotated every 4 KiB, unsigned; current file last.
    pub rotated: Vec<PathBuf>,
    pub key_a: PathBuf,
    pub key_b: PathBuf,
    /// Another Ed25519 key that signed nothing.
    pub stranger: PathBuf,
    pub issued_a: Vec<Issued>,
}

pub fn golden() -> &'static Golden {
    static G: OnceLock<Golden> = OnceLock::new();
    G.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(build())
        })
        .join()
        .unwrap()
    })
}

async fn issue(server: &Server, ns: &str, sa: &str, token: &str) -> Issued {
    let id = linkerd_name(ns, sa);
    let csr = CsrSpec::for_identity(&id).build(&KeyPair::generate().unwrap());
    let mut c = client(server.grpc_addr).await;
    let resp = certify(&mut c, &id, token, csr).await.unwrap();
    let (_, leaf) = X509Certificate::from_der(&resp.leaf_certificate).unwrap();
    Issued {
        serial: leaf
            .raw_serial_as_string()
            .replace(':', "")
            .trim_start_matches('0')
            .to_owned(),
        leaf: resp.leaf_certificate.clone(),
        issuer: resp.intermediate_certificates[0].clone(),
    }
}

async fn build() -> Golden {
    install_crypto();
    let files = ca_files();
    let dir = tempfile::tempdir().unwrap();
    let (priv_a, key_a) = key_files(dir.path(), "a", true);
    let (priv_b, key_b) = key_files(dir.path(), "b", false);
    let (_, stranger) = key_files(dir.path(), "stranger", true);

    let a = dir.path().join("a").join("audit.jsonl");
    let mut config = audit_config(&files, &a, "r-a", OnFailure::Refuse);
    config.audit.checkpoint.records = 3;
    config.audit.checkpoint.key = Some(priv_a);
    let server = Server::start(config).await.unwrap();
    let web_pod = token_with_pod(&files, "shop", "web", "web-7d9f-x2", "pod-uid-1");
    let mut issued_a = vec![issue(&server, "shop", "web", &web_pod).await];
    let api = files.token_key.token("shop", "api");
    issued_a.push(issue(&server, "shop", "api", &api).await);
    // Refused after authentication: the token proves shop/web, the call asks for shop/api.
    let mut c = client(server.grpc_addr).await;
    let id = linkerd_name("shop", "api");
    let csr = CsrSpec::for_identity(&id).build(&KeyPair::generate().unwrap());
    let err = certify(&mut c, &id, web_pod.clone(), csr.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = certify(&mut c, &id, "not-a-jwt", csr).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    issued_a.push(issue(&server, "shop", "web", &web_pod).await);
    server.shutdown().await.unwrap();

    let b = dir.path().join("b").join("audit.jsonl");
    let mut config = audit_config(&files, &b, "r-b", OnFailure::Refuse);
    config.audit.checkpoint.records = 2;
    config.audit.checkpoint.key = Some(priv_b);
    let server = Server::start(config).await.unwrap();
    for sa in ["db", "db", "cache"] {
        issue(&server, "store", sa, &files.token_key.token("store", sa)).await;
    }
    server.shutdown().await.unwrap();

    let c_path = dir.path().join("c").join("audit.jsonl");
    let mut config = audit_config(&files, &c_path, "r-c", OnFailure::Refuse);
    config.audit.file.as_mut().unwrap().max_size = 4096;
    config.audit.file.as_mut().unwrap().keep = 10;
    let server = Server::start(config).await.unwrap();
    let token = files.token_key.token("shop", "web");
    for _ in 0..15 {
        issue(&server, "shop", "web", &token).await;
    }
    server.shutdown().await.unwrap();
    let mut rotated: Vec<PathBuf> = (1..=10)
        .rev()
        .map(|n| dir.path().join("c").join(format!("audit.jsonl.{n}")))
        .filter(|p| p.exists())
        .collect();
    rotated.push(c_path);
    drop(files);
    Golden {
        dir,
        a,
        b,
        rotated,
        key_a,
        key_b,
        stranger,
        issued_a,
    }
}
