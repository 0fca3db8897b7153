//! The PEM forms Istio's responses carry: the issuer chain, one certificate per entry, and
//! the whole anchor bundle as the last entry. They change only when the issuer or the
//! anchors do, so they are encoded once per pair and reused (encoding them on every call
//! cost Istio's API about a quarter of its throughput against Linkerd's, commit 82d7bd9).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use certmint_core::ca::TrustAnchors;
use certmint_core::ca::cert::to_pem;
use certmint_core::certify::Certified;

/// The last issuer chain and anchor bundle seen, with their PEM forms.
#[derive(Default)]
pub(super) struct PemCache {
    last: ArcSwapOption<Encoded>,
}

struct Encoded {
    chain_der: Vec<Bytes>,
    anchors: Arc<TrustAnchors>,
    chain_pem: Vec<String>,
    anchors_pem: String,
}

impl PemCache {
    /// Leaf, intermediates, then the whole anchor bundle as the last entry: Istio's clients
    /// take their roots from the last entry, and during a rotation both roots must be there.
    pub(super) fn response_chain(&self, c: &Certified) -> Vec<String> {
        let encoded = self.encoded(c);
        let mut chain = Vec::with_capacity(encoded.chain_pem.len() + 2);
        chain.push(to_pem(&c.leaf));
        chain.extend(encoded.chain_pem.iter().cloned());
        chain.push(encoded.anchors_pem.clone());
        chain
    }

    fn encoded(&self, c: &Certified) -> Arc<Encoded> {
        if let Some(hit) = self.last.load_full().filter(|e| e.is_for(c)) {
            return hit;
        }
        let fresh = Arc::new(Encoded {
            chain_der: c.chain.clone(),
            anchors: c.anchors.clone(),
            chain_pem: c.chain.iter().map(|der| to_pem(der)).collect(),
            anchors_pem: c.anchors.certs().iter().map(|a| to_pem(&a.der)).collect(),
        });
        self.last.store(Some(fresh.clone()));
        fresh
    }
}

impl Encoded {
    fn is_for(&self, c: &Certified) -> bool {
        Arc::ptr_eq(&self.anchors, &c.anchors) && self.chain_der == c.chain
    }
}
