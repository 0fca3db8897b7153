//! Where a CA key lives: in certmint's memory (a PEM file or Secret) or outside it (an
//! HSM, named by a PKCS#11 URI), behind one signer so that the CA does not care which.
//! The core knows only the trait; the PKCS#11 layer implements it.

use std::sync::Arc;

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};

use super::keys::{KeyError, key_pair_from_pem};

/// A private key that signs outside certmint's memory.
pub trait ExternalKey: Send + Sync {
    /// The public key as rcgen expects it (an uncompressed EC point).
    fn public_key_raw(&self) -> &[u8];
    fn algorithm(&self) -> &'static SignatureAlgorithm;
    /// Signs `msg` (hashing it as the algorithm says). The error says what went wrong,
    /// without secrets; the implementation has already counted and logged it.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String>;
    /// False while no signature can be made (the token is gone; recovery runs).
    fn available(&self) -> bool;
    /// Where the key is, for `check`, `inspect` and logs (a URI without a PIN).
    fn location(&self) -> String;
}

/// Turns a key reference (the key entry of an issuer Secret or file holding a URI rather
/// than PEM) into a key.
pub trait KeyResolver: Send + Sync {
    fn resolve(&self, reference: &str) -> Result<Arc<dyn ExternalKey>, KeyError>;
}

/// The resolver when no HSM is configured: refuses every reference.
pub struct NoExternalKeys;

impl KeyResolver for NoExternalKeys {
    fn resolve(&self, reference: &str) -> Result<Arc<dyn ExternalKey>, KeyError> {
        let scheme = reference.split(':').next().unwrap_or_default();
        Err(KeyError::External(format!(
            "the key is a {scheme}: reference but no `hsm:` section is configured; add one naming the PKCS#11 module and PIN file"
        )))
    }
}

/// A CA key, in memory or external.
pub enum CaKey {
    Local(KeyPair),
    External(Arc<dyn ExternalKey>),
}

/// The URI scheme of keys that live in a token.
pub const PKCS11_SCHEME: &str = "pkcs11:";

impl CaKey {
    /// The key named by a key file's bytes: a PKCS#11 URI (resolved by `keys`) or PEM.
    pub fn from_key_file(bytes: &[u8], keys: &dyn KeyResolver) -> Result<Self, KeyError> {
        match external_reference(bytes) {
            Some(uri) => Ok(Self::External(keys.resolve(uri)?)),
            None => Ok(Self::Local(key_pair_from_pem(bytes)?)),
        }
    }

    /// Where the key is: `None` in memory, else the external location.
    pub fn location(&self) -> Option<String> {
        match self {
            Self::Local(_) => None,
            Self::External(k) => Some(k.location()),
        }
    }

    /// False while an external key cannot sign.
    pub fn available(&self) -> bool {
        match self {
            Self::Local(_) => true,
            Self::External(k) => k.available(),
        }
    }

    pub fn public_key_raw(&self) -> &[u8] {
        match self {
            Self::Local(k) => k.public_key_raw(),
            Self::External(k) => k.public_key_raw(),
        }
    }
}

/// The URI in a key file that holds one instead of PEM (surrounding whitespace allowed).
pub fn external_reference(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    text.starts_with(PKCS11_SCHEME).then_some(text)
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        self.public_key_raw()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            Self::Local(k) => k.algorithm(),
            Self::External(k) => k.algorithm(),
        }
    }
}

impl SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            Self::Local(k) => k.sign(msg),
            // rcgen's variant for a key it does not hold; the cause is logged by the key.
            Self::External(k) => k.sign(msg).map_err(|_| rcgen::Error::RemoteKeyError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_holding_a_uri_is_external_and_pem_is_local() {
        assert_eq!(
            external_reference(b"  pkcs11:token=t;object=o\n"),
            Some("pkcs11:token=t;object=o")
        );
        assert_eq!(external_reference(b"token=t;object=o"), None);
        let err = CaKey::from_key_file(b"pkcs11:token=t;object=o", &NoExternalKeys)
            .err()
            .unwrap();
        assert!(err.to_string().contains("no `hsm:` section"), "{err}");
        let pem = KeyPair::generate().unwrap().serialize_pem();
        assert_eq!(external_reference(pem.as_bytes()), None);
        let key = CaKey::from_key_file(pem.as_bytes(), &NoExternalKeys).unwrap();
        assert!(key.location().is_none() && key.available());
    }
}
