//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/` (or the
//! directory given): valid CSRs, tokens, PEM bundles in each key format, Kubernetes
//! objects, configs, Certify requests and Istio CreateCertificate requests. Keys are generated on every run and never
//! committed; `fuzz/run.sh` runs this first.
//!
//! `cargo run --example fuzz_seeds -- [DIR]`

mod pki;
mod tokens;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use certmint_grpc::proto::CertifyRequest;
use certmint_grpc::proto::istio::IstioCertificateRequest;
use prost::Message;

const IDENTITY: &str = "web.shop.serviceaccount.identity.linkerd.cluster.local";
const SPIFFE: &str = "spiffe://cluster.local/ns/shop/sa/web";

fn main() -> Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus"));
    let csrs = pki::csrs(IDENTITY, SPIFFE)?;
    for (name, der) in &csrs {
        write(&dir, "csr", name, der)?;
    }
    for (name, der) in &csrs {
        for (tname, token) in [("ok", &b"shop/web\n"[..]), ("unavailable", b"unavailable")] {
            let req = CertifyRequest {
                identity: IDENTITY.into(),
                token: token.to_vec().into(),
                certificate_signing_request: der.clone().into(),
            };
            write(
                &dir,
                "certify",
                &format!("{name}-{tname}"),
                &req.encode_to_vec(),
            )?;
        }
    }
    let other = CertifyRequest {
        identity: "db.shop.serviceaccount.identity.linkerd.cluster.local".into(),
        token: b"shop/db".to_vec().into(),
        certificate_signing_request: csrs[0].1.clone().into(),
    };
    write(&dir, "certify", "names-mismatch", &other.encode_to_vec())?;
    istio_seeds(&dir)?;
    let (public_pem, tokens) = tokens::tokens()?;
    write(&dir, "_keys", "jwt-public.pem", public_pem.as_bytes())?;
    for (name, token) in &tokens {
        write(&dir, "token", name, token.as_bytes())?;
    }
    for (name, bundle) in pki::ca_bundles()? {
        write(&dir, "ca_pem", &name, &bundle.pem())?;
        write(
            &dir,
            "kube_objects",
            &name,
            &bundle.kube_json(name.contains("linkerd"))?,
        )?;
    }
    for (name, text) in configs() {
        write(&dir, "config", &name, text.as_bytes())?;
    }
    println!("seed corpora written under {}", dir.display());
    Ok(())
}

/// The `istio` target's input: one length byte, that many bytes of `authorization` header
/// value, then an `IstioCertificateRequest`.
fn istio_seeds(dir: &Path) -> Result<()> {
    let csrs = pki::istio_csrs(SPIFFE)?;
    for (name, der) in &csrs {
        let csr = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.clone()));
        for (tname, auth, behalf) in [
            ("ok", "Bearer shop/web", None),
            ("self", "Bearer shop/web", Some(SPIFFE)),
            ("behalf", "Bearer istio-system/ztunnel", Some(SPIFFE)),
            ("unavailable", "Bearer unavailable", None),
            ("basic", "Basic shop/web", None),
        ] {
            let metadata = behalf.map(|id| prost_types::Struct {
                fields: [(
                    "ImpersonatedIdentity".to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue(id.into())),
                    },
                )]
                .into(),
            });
            let req = IstioCertificateRequest {
                csr: csr.clone(),
                validity_duration: 86_400,
                metadata,
            };
            let mut input = vec![auth.len() as u8];
            input.extend_from_slice(auth.as_bytes());
            input.extend(req.encode_to_vec());
            write(dir, "istio", &format!("{name}-{tname}"), &input)?;
        }
    }
    Ok(())
}

fn configs() -> Vec<(String, String)> {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/certmint.yaml"))
            .unwrap_or_default();
    let extra = [
        ("empty", ""),
        (
            "domain",
            "trust_domain: example.org\ncontrol_namespace: mesh\n",
        ),
        (
            "issuance",
            "issuance:\n  lifetime: 24h\n  clock_skew: 20s\n",
        ),
        (
            "kube",
            "issuer:\n  source: kubernetes\n  namespace: linkerd\n  secret: linkerd-identity-issuer\n  reload_interval: 5m\nanchors:\n  source: kubernetes\n  configmap: linkerd-identity-trust-roots\n  key: ca-bundle.crt\n",
        ),
        (
            "jwt",
            "authn:\n  mode: jwt\n  audiences: [certmint]\n  jwt:\n    keys: [/keys/sa.pub]\n    issuers: [https://kubernetes.default.svc]\n",
        ),
    ];
    let mut out = vec![("shipped".to_owned(), shipped)];
    out.extend(extra.iter().map(|(n, t)| (n.to_string(), t.to_string())));
    out
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    let p = d.join(format!("seed-{name}"));
    std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))
}
