//! Issue 11 controls: the outage switch (every request answered 500, or every connection
//! refused), service-account signing-key rotation, and revoking a pod's tokens.

use super::FakeKube;
use super::signing::{KeyAlg, SigningKey};

/// What the fake does to every request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Outage {
    /// Normal service.
    #[default]
    None,
    /// Every request, authenticated or not, gets HTTP 500 (kube's client does not retry it).
    ServerErrors,
    /// The listening socket is closed (connections are refused) and open connections are
    /// cut; switching back to another state listens on the same port again.
    RefuseConnections,
}

impl FakeKube {
    /// Turns an outage on or off; takes effect for the requests that arrive after it.
    pub fn set_outage(&self, outage: Outage) {
        self.state().faults.update(|s| s.outage = outage);
        self.inner
            .refuse
            .send_replace(outage == Outage::RefuseConnections);
    }

    /// A new signing key of `alg` signs tokens from now on and is published first in the
    /// JWKS; older keys stay trusted and published unless `retire_old`. Returns its `kid`.
    pub fn rotate_signing_key(&self, alg: KeyAlg, retire_old: bool) -> String {
        let key = SigningKey::generate_for(alg);
        let kid = key.kid.clone();
        self.state().keys.rotate(key, retire_old);
        kid
    }

    /// The `kid` of the key that signs new tokens.
    pub fn signing_kid(&self) -> String {
        self.state().keys.current().kid.clone()
    }

    /// TokenReview refuses every token bound to this pod from now on (the pod was
    /// deleted), while the token's signature and claims stay valid.
    pub fn revoke_pod(&self, ns: &str, pod: &str) {
        let mut revoked = self
            .state()
            .revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        revoked.insert(format!("{ns}/{pod}"));
    }
}
