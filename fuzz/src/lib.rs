//! Fixtures shared by the fuzz targets: a CA made once per process, the identity every
//! seed asks for, an instant authenticator, and where the seed generator leaves the JWT
//! verification keys.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use certmint_core::ca::create::{KeyType, generate_key, new_issuer, new_root};
use certmint_core::ca::{CaState, CaStore, Issuer, IssuerMaterial, LeafNames, TrustAnchors};
use certmint_core::identity::{Naming, ServiceAccount};

/// The trust domain and control namespace of every seed (certmint's defaults).
pub const TRUST_DOMAIN: &str = "cluster.local";
pub const CONTROL_NS: &str = "linkerd";
/// The issuer and audience the seed tokens carry and the token target accepts.
pub const JWT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
pub const JWT_AUDIENCE: &str = "certmint";

pub fn naming() -> Naming {
    Naming::new(CONTROL_NS, TRUST_DOMAIN).expect("default naming")
}

/// The probe names an issuer must be able to sign for (what certmint itself uses).
pub fn probe_names() -> LeafNames {
    certmint_core::ca::probe_names(&naming())
}

/// The PEM file of JWT public keys the seed generator writes (`fuzz/corpus/_keys`).
pub fn jwt_keys_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/_keys/jwt-public.pem")
}

/// A store holding a freshly generated root and P-256 issuer, made once per process.
pub fn ca_store() -> &'static CaStore {
    static STORE: OnceLock<CaStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let now = SystemTime::now();
        let year = Duration::from_secs(365 * 86400);
        let root_key = generate_key(KeyType::P256).expect("root key");
        let root = new_root(
            "fuzz root",
            10 * year,
            root_key,
            now - Duration::from_secs(60),
        )
        .expect("root");
        let issuer_key = generate_key(KeyType::P256).expect("issuer key");
        let issuer = new_issuer(
            &root.cert_pem,
            &root.key_pem,
            "fuzz issuer",
            year,
            0,
            issuer_key,
            now - Duration::from_secs(60),
        )
        .expect("issuer");
        let anchors = TrustAnchors::from_pem(root.cert_pem.as_bytes(), now).expect("anchors");
        let material = IssuerMaterial {
            cert_pem: issuer.cert_pem.into_bytes(),
            key_pem: issuer.key_pem.into_bytes(),
        };
        let issuer = Issuer::load(&material, &anchors, &probe_names(), now).expect("issuer");
        let store = CaStore::new();
        store.store(CaState {
            issuer: issuer.into(),
            anchors: anchors.into(),
        });
        store
    })
}

/// An authenticator that decides at once: a token `namespace/name` proves that service
/// account, `unavailable` cannot be decided, anything else is rejected.
pub struct InstantAuthn;

impl certmint_core::authn::Authenticator for InstantAuthn {
    fn authenticate<'a>(
        &'a self,
        token: &'a certmint_core::authn::Token,
    ) -> futures::future::BoxFuture<
        'a,
        Result<certmint_core::authn::Authenticated, certmint_core::authn::AuthnError>,
    > {
        use certmint_core::authn::{Authenticated, AuthnError, Method};
        Box::pin(async move {
            if token.as_str() == "unavailable" {
                return Err(AuthnError::Unavailable("fuzz".into()));
            }
            let (ns, name) = token
                .as_str()
                .split_once('/')
                .ok_or_else(|| AuthnError::Unauthenticated("not ns/name".into()))?;
            let account = ServiceAccount::new(ns, name)
                .map_err(|e| AuthnError::Unauthenticated(e.to_string()))?;
            Ok(Authenticated::new(account, Method::Jwt, None))
        })
    }
}

/// A certifier over [`ca_store`] with [`InstantAuthn`], default naming and leaf policy.
pub fn certifier() -> certmint_core::certify::Certifier {
    certmint_core::certify::Certifier::new(
        ca_store().clone(),
        std::sync::Arc::new(InstantAuthn),
        naming(),
        certmint_core::ca::LeafPolicy::default(),
        std::sync::Arc::new(certmint_core::clock::SystemClock),
    )
}

/// A call handler for `api` around [`certifier`], made on `rt` (its log summaries run there).
pub fn call_handler(
    rt: &tokio::runtime::Runtime,
    api: certmint_grpc::metrics::Api,
) -> std::sync::Arc<certmint_grpc::CallHandler> {
    let metrics = std::sync::Arc::new(certmint_grpc::metrics::Metrics::default());
    let handler = rt.block_on(async {
        certmint_grpc::CallHandler::new(
            api,
            std::sync::Arc::new(certifier()),
            metrics,
            Duration::from_secs(10),
        )
    });
    std::sync::Arc::new(handler)
}

/// The single-threaded runtime the gRPC targets run calls on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}
