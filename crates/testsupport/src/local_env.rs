//! Shared set-up for the local-verification tests (issue 11): a fake API server, a
//! certmint serving from files for its issuer and anchors and authenticating through the
//! fake, and helpers to certify `shop/web` with a chosen token and read the metrics.

use std::time::Duration;

use certmint::app::Server;
use certmint::config::{Config, LocalVerification};
use rcgen::KeyPair;

use crate::fake_kube::{FakeKube, RequestKind, TokenSpec};
use crate::pki::Ca;
use crate::*;

pub const WAIT: Duration = Duration::from_secs(30);

pub struct Env {
    pub kube: FakeKube,
    pub files: CaFiles,
    pub server: Server,
    pub issuer: Ca,
}

/// Starts certmint in `mode` against `kube`, adjusted by `tweak`; returns once it is ready
/// and (unless `mode` is off) has loaded the key set.
pub async fn start(
    kube: FakeKube,
    mode: LocalVerification,
    tweak: impl FnOnce(&mut Config),
) -> Env {
    install_crypto();
    let (files, _, issuer) = CaFiles::with_ca("root", "issuer");
    let mut c = files.kubernetes_config(|p| kube.write_kubeconfig(p));
    c.authn.kubernetes.timeout = Duration::from_secs(2);
    c.authn.kubernetes.local_verification = mode;
    tweak(&mut c);
    let server = Server::start(c).await.unwrap();
    let s = &server;
    eventually(WAIT, "ready", async || s.readiness.check().is_ok()).await;
    if mode != LocalVerification::Off {
        eventually(WAIT, "key set loaded", async || {
            s.metrics.kube.jwks_keys.get() > 0
        })
        .await;
    }
    Env {
        kube,
        files,
        server,
        issuer,
    }
}

pub fn web() -> String {
    linkerd_name("shop", "web")
}

/// A projected token for `shop/web`, bound to pod `web-0`, living one hour.
pub fn spec() -> TokenSpec {
    let mut spec = TokenSpec::new("shop", "web", &[AUDIENCE], Duration::from_secs(3600));
    spec.pod = Some("web-0".into());
    spec
}

impl Env {
    /// Certifies `shop/web` with `token`; the leaf's issuer chain on success.
    pub async fn certify(&self, token: &str) -> Result<Vec<Vec<u8>>, tonic::Status> {
        let key = KeyPair::generate().unwrap();
        let mut c = client(self.server.grpc_addr).await;
        let csr = CsrSpec::for_identity(&web()).build(&key);
        let resp = certify(&mut c, &web(), token.to_owned(), csr).await?;
        Ok(resp.intermediate_certificates)
    }

    /// Certification must succeed and return this server's issuer.
    pub async fn certify_ok(&self, token: &str) {
        let chain = self.certify(token).await.expect("certified");
        assert_eq!(chain, vec![self.issuer.der.clone()]);
    }

    pub fn reviews(&self) -> u64 {
        self.kube.request_count(RequestKind::TokenReview)
    }

    /// The value of one sample in `/metrics`, e.g. `certmint_token_local_fallbacks_total{result="budget"}`.
    pub fn metric(&self, sample: &str) -> f64 {
        let text = self.server.metrics.encode();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no sample {sample} in metrics"))
    }

    pub fn answered_by(&self, path: &str) -> f64 {
        self.metric(&format!(
            "certmint_token_authentications_total{{path=\"{path}\"}}"
        ))
    }

    pub fn fallbacks(&self, reason: &str) -> f64 {
        self.metric(&format!(
            "certmint_token_local_fallbacks_total{{result=\"{reason}\"}}"
        ))
    }
}
