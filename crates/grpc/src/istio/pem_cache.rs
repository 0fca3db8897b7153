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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use certmint_core::ca::cert::parse_pem_chain;
    use certmint_core::ca::create::{KeyType, generate_key, new_root};
    use rustls_pki_types::CertificateDer;

    use super::*;

    fn roots(names: &[&str]) -> Arc<TrustAnchors> {
        let now = SystemTime::now();
        let pem: String = names
            .iter()
            .map(|n| {
                let key = generate_key(KeyType::P256).unwrap();
                new_root(n, Duration::from_secs(3600), key, now)
                    .unwrap()
                    .cert_pem
            })
            .collect();
        Arc::new(TrustAnchors::from_pem(pem.as_bytes(), now).unwrap())
    }

    fn certified(chain: &[&[u8]], anchors: &Arc<TrustAnchors>) -> Certified {
        Certified {
            leaf: CertificateDer::from(b"leaf".to_vec()),
            chain: chain.iter().map(|d| Bytes::copy_from_slice(d)).collect(),
            anchors: anchors.clone(),
            not_before: SystemTime::UNIX_EPOCH,
            not_after: SystemTime::UNIX_EPOCH,
            serial: [1; 16],
            spki_sha256: [0; 32],
            issuer_serial: String::new(),
            issuer_sha256: String::new(),
        }
    }

    #[test]
    fn response_is_leaf_then_intermediates_then_the_whole_anchor_bundle() {
        let anchors = roots(&["old-root", "new-root"]);
        let c = certified(&[b"issuer", b"intermediate"], &anchors);
        let chain = PemCache::default().response_chain(&c);
        let bundle: String = anchors.certs().iter().map(|a| to_pem(&a.der)).collect();
        let expected = [
            to_pem(b"leaf"),
            to_pem(b"issuer"),
            to_pem(b"intermediate"),
            bundle,
        ];
        assert_eq!(chain, expected);
        assert_eq!(parse_pem_chain(chain[3].as_bytes()).unwrap().len(), 2);
    }

    #[test]
    fn encodes_once_per_issuer_chain_and_anchor_bundle() {
        let (a, b) = (roots(&["a"]), roots(&["b"]));
        let cache = PemCache::default();
        let first = cache.encoded(&certified(&[b"issuer-1"], &a));
        let again = cache.encoded(&certified(&[b"issuer-1"], &a));
        assert!(Arc::ptr_eq(&first, &again), "same pair: reused");
        let new_issuer = cache.encoded(&certified(&[b"issuer-2"], &a));
        assert!(!Arc::ptr_eq(&first, &new_issuer));
        assert_eq!(new_issuer.chain_pem, [to_pem(b"issuer-2")]);
        let new_anchors = cache.encoded(&certified(&[b"issuer-2"], &b));
        assert!(!Arc::ptr_eq(&new_issuer, &new_anchors));
        assert_eq!(new_anchors.anchors_pem, to_pem(&b.certs()[0].der));
    }
}
