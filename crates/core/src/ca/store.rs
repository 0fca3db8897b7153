//! The hot-swappable CA state: readers never block, writers swap whole snapshots.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::anchors::TrustAnchors;
use super::issuer::Issuer;

/// One consistent view: an issuer and the anchors it was validated against.
#[derive(Debug)]
pub struct CaState {
    pub issuer: Arc<Issuer>,
    pub anchors: Arc<TrustAnchors>,
}

/// Shared handle to the current [`CaState`]; cloning is cheap.
#[derive(Clone, Debug, Default)]
pub struct CaStore {
    current: Arc<ArcSwapOption<CaState>>,
}

impl CaStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current state; a request keeps using this snapshot even if a swap happens.
    pub fn load(&self) -> Option<Arc<CaState>> {
        self.current.load_full()
    }

    /// Atomically replaces the state.
    pub fn store(&self, state: CaState) {
        self.current.store(Some(Arc::new(state)));
    }
}
