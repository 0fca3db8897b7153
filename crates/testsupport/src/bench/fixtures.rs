//! Material made before any clock starts: a root and an issuer, the workload identity,
//! and a pool of CSRs with distinct P-256 keys (what linkerd2-proxy sends: CN and one DNS
//! SAN, both the identity).

use std::sync::Arc;
use std::time::SystemTime;

use certmint_core::ca::{CaState, CaStore, Issuer, IssuerMaterial, LeafNames, TrustAnchors};
use rcgen::KeyPair;

use crate::pki::Ca;
use crate::{CaFiles, CsrSpec, linkerd_name, spiffe_id};

/// The workload every single-token case certifies.
pub const NS: &str = "shop";
pub const SA: &str = "web";
/// The name in certmint's TLS serving certificate (the default for `linkerd`/`cluster.local`).
pub const SERVER_NAME: &str = "certmint.linkerd.serviceaccount.identity.linkerd.cluster.local";

pub fn identity() -> String {
    linkerd_name(NS, SA)
}

/// A trust anchor and an issuer under it (ECDSA P-256, as `certmint ca` makes by default).
pub struct Pki {
    pub root: Ca,
    pub issuer: Ca,
}

impl Pki {
    pub fn new() -> Self {
        let root = Ca::root("bench root");
        let issuer = root.issuer("bench issuer");
        Pki { root, issuer }
    }

    /// The issuer validated as the server validates it.
    pub fn load_issuer(&self) -> (Issuer, TrustAnchors) {
        let now = SystemTime::now();
        let anchors =
            TrustAnchors::from_pem(self.root.cert_pem.as_bytes(), now).expect("bench anchors load");
        let material = IssuerMaterial {
            cert_pem: self.issuer.cert_pem.clone().into_bytes(),
            key_pem: self.issuer.key_pem.clone().into_bytes(),
        };
        let probe = LeafNames {
            dns: vec![linkerd_name("certmint-probe", "certmint-probe")],
            uri: Some(spiffe_id("certmint-probe", "certmint-probe")),
        };
        let issuer = Issuer::load(&material, &anchors, &probe, now).expect("bench issuer loads");
        (issuer, anchors)
    }

    /// A store holding this issuer, as the server's sources would fill it.
    pub fn store(&self) -> CaStore {
        let (issuer, anchors) = self.load_issuer();
        let store = CaStore::new();
        store.store(CaState {
            issuer: Arc::new(issuer),
            anchors: Arc::new(anchors),
        });
        store
    }

    /// Anchor and issuer files as the files sources read them.
    pub fn files(&self) -> CaFiles {
        let files = CaFiles::new();
        files.write_anchors(&self.root.cert_pem);
        files.write_issuer(&self.issuer.cert_pem, &self.issuer.key_pem);
        files
    }
}

/// `n` CSRs for `identity`, each with its own key, made on every core.
pub fn csr_pool(identity: &str, n: usize) -> Vec<Vec<u8>> {
    pool(n, &CsrSpec::for_identity(identity), |der| der)
}

/// `n` CSRs as Istio's ztunnel sends them (PEM, empty subject, the SPIFFE ID as the only
/// SAN), each with its own key.
pub fn istio_csr_pool(n: usize) -> Vec<Vec<u8>> {
    let spec = CsrSpec {
        uris: vec![format!("spiffe://cluster.local/ns/{NS}/sa/{SA}")],
        ..CsrSpec::default()
    };
    pool(n, &spec, |der| {
        pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der)).into_bytes()
    })
}

fn pool(n: usize, spec: &CsrSpec, encode: fn(Vec<u8>) -> Vec<u8>) -> Vec<Vec<u8>> {
    let threads = std::thread::available_parallelism().map_or(1, |c| c.get());
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                let count = per.min(n.saturating_sub(t * per));
                s.spawn(move || {
                    (0..count)
                        .map(|_| encode(spec.build(&KeyPair::generate().expect("P-256 key"))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("CSR thread"))
            .collect()
    })
}
