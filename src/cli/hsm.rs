//! The PKCS#11 module and PIN for commands whose keys live in a token: `ca --key pkcs11:…`
//! generates a key there, `ca issuer --ca-key pkcs11:…` signs with one, `check` and
//! `inspect` look at an issuer whose key file holds a `pkcs11:` URI.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use certmint_core::ca::create::KeyType;
use certmint_core::ca::{CaKey, ExternalKey, KeyResolver, NoExternalKeys};
use certmint_hsm::{Curve, HsmConfig, HsmKeys};

/// `--pkcs11-module` and `--pin-file`, needed when a key is a `pkcs11:` URI.
#[derive(Debug, Args)]
pub(crate) struct HsmArgs {
    /// The PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so) for `pkcs11:` keys.
    #[arg(long, env = "CERTMINT_PKCS11_MODULE")]
    pkcs11_module: Option<PathBuf>,
    /// A file holding the token's user PIN (never on the command line).
    #[arg(long, env = "CERTMINT_PKCS11_PIN_FILE")]
    pin_file: Option<PathBuf>,
}

impl HsmArgs {
    /// The `hsm:` settings when both flags are given.
    pub fn config(&self) -> Option<HsmConfig> {
        Some(HsmConfig {
            module: self.pkcs11_module.clone()?,
            pin_file: self.pin_file.clone()?,
            sessions: 8,
        })
    }

    /// The token's keys, when the ceremony names one; else a resolver refusing URIs.
    pub fn resolver(&self, needed: bool) -> anyhow::Result<Option<HsmKeys>> {
        if !needed {
            return Ok(None);
        }
        let (Some(module), Some(pin_file)) = (&self.pkcs11_module, &self.pin_file) else {
            anyhow::bail!(
                "a pkcs11: key needs --pkcs11-module (the PKCS#11 library) and --pin-file (a file holding the PIN)"
            );
        };
        let cfg = HsmConfig {
            module: module.clone(),
            pin_file: pin_file.clone(),
            sessions: 2,
        };
        Ok(Some(HsmKeys::new(&cfg, Arc::default())?))
    }
}

impl HsmArgs {
    /// The resolver for an issuer key file's bytes: the token's when it holds a URI.
    pub fn boxed_resolver(&self, key_file: &[u8]) -> anyhow::Result<Box<dyn KeyResolver>> {
        let needed = certmint_core::ca::signing_key::external_reference(key_file).is_some();
        Ok(match self.resolver(needed)? {
            Some(keys) => Box::new(keys),
            None => Box::new(NoExternalKeys),
        })
    }
}

/// Generates the new CA's key: in the token `uri` names, or in memory.
pub(crate) fn new_key(
    keys: Option<&HsmKeys>,
    uri: Option<&str>,
    key_type: KeyType,
) -> anyhow::Result<CaKey> {
    let (Some(keys), Some(uri)) = (keys, uri) else {
        return Ok(CaKey::Local(certmint_core::ca::create::generate_key(
            key_type,
        )?));
    };
    let curve = match key_type {
        KeyType::P256 => Curve::P256,
        KeyType::P384 => Curve::P384,
        KeyType::Rsa3072 => {
            anyhow::bail!("--key-type rsa3072 cannot be generated in a token; use p256 or p384")
        }
    };
    let key = keys
        .generate(uri, curve)
        .with_context(|| format!("cannot generate the key in the token ({uri})"))?;
    Ok(CaKey::External(Arc::new(key) as Arc<dyn ExternalKey>))
}

/// The resolver for validating what was made.
pub(crate) fn resolver(keys: Option<&HsmKeys>) -> &dyn KeyResolver {
    match keys {
        Some(k) => k,
        None => &NoExternalKeys,
    }
}
