//! Checkpoint signatures with a dedicated audit key (ECDSA P-256 or Ed25519, aws-lc-rs;
//! never the issuer key). The signed bytes are [`signed_bytes`]: one ASCII line per field,
//! so no field can run into another:
//!
//! ```text
//! certmint-audit-checkpoint-v1\n chain=<id>\n seq=<n>\n count=<n>\n head=<hex>\n time=<rfc3339>\n
//! ```
//! (without the spaces). ECDSA signatures are ASN.1 DER; both are base64 in the record.

use std::fmt;
use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair, ParsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::chain::Chain;
use super::record::{Body, Checkpoint};
use certmint_core::digest::{hex, sha256};

const MAX_KEY_FILE: u64 = 64 * 1024;
/// `alg` of an unsigned checkpoint.
pub const UNSIGNED: &str = "none";

/// Why an audit key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read audit key {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("audit key {path}: {reason}")]
    Parse { path: String, reason: &'static str },
}

enum Signing {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// The private audit key. `Debug` shows only its algorithm and id.
pub struct AuditSigner {
    key: Signing,
    key_id: String,
}

impl fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditSigner({}, {})", self.alg(), self.key_id)
    }
}

/// The id of a public key: the first 8 bytes of the SHA-256 of its SubjectPublicKeyInfo.
fn key_id(spki_der: &[u8]) -> String {
    hex(&sha256(spki_der)[..8])
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    certmint_core::fsutil::read_bounded(path, MAX_KEY_FILE).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl AuditSigner {
    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`, ECDSA P-256 or Ed25519) or SEC1
    /// (`EC PRIVATE KEY`, P-256).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let parse = |reason| KeyError::Parse {
            path: path.display().to_string(),
            reason,
        };
        let block = pem::parse(read(path)?).map_err(|_| parse("not a PEM file"))?;
        let der = block.contents();
        let key = match block.tag() {
            "PRIVATE KEY" => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map(Signing::Ed25519)
                .or_else(|_| {
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
                        .map(Signing::Ecdsa)
                }),
            "EC PRIVATE KEY" => {
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
                    .map(Signing::Ecdsa)
            }
            _ => return Err(parse("expected a PRIVATE KEY or EC PRIVATE KEY PEM block")),
        }
        .map_err(|_| parse("not an ECDSA P-256 or Ed25519 private key"))?;
        let spki = match &key {
            Signing::Ecdsa(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Signing::Ed25519(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| parse("public key cannot be encoded"))?;
        Ok(Self {
            key_id: key_id(&spki),
            key,
        })
    }

    pub fn alg(&self) -> &'static str {
        match self.key {
            Signing::Ecdsa(_) => "ecdsa-p256-sha256",
            Signing::Ed25519(_) => "ed25519",
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match &self.key {
            Signing::Ecdsa(k) => k
                .sign(&SystemRandom::new(), message)
                .ok()
                .map(|s| s.as_ref().to_vec()),
            Signing::Ed25519(k) => Some(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// The bytes a checkpoint signature covers.
pub fn signed_bytes(chain: &str, seq: u64, count: u64, head: &str, time: &str) -> Vec<u8> {
    format!(
        "certmint-audit-checkpoint-v1\nchain={chain}\nseq={seq}\ncount={count}\nhead={head}\ntime={time}\n"
    )
    .into_bytes()
}

/// The next checkpoint of `chain`, signed when a signer is given.
pub fn checkpoint(signer: Option<&AuditSigner>, chain: &Chain, time: &str, last: bool) -> Body {
    let (seq, head) = (chain.next_seq(), chain.head().to_owned());
    let message = signed_bytes(chain.id(), seq, seq, &head, time);
    let sig = signer.and_then(|s| s.sign(&message));
    let signed = signer.filter(|_| sig.is_some());
    Body::Checkpoint(Checkpoint {
        head,
        count: seq,
        alg: signed.map_or(UNSIGNED, |s| s.alg()).to_owned(),
        key_id: signed.map(|s| s.key_id.clone()),
        sig: sig.map(|s| B64.encode(s)),
        last,
    })
}

/// The public audit key an auditor verifies checkpoints with.
pub struct AuditVerifier {
    key: ParsedPublicKey,
    alg: &'static str,
    key_id: String,
}

impl AuditVerifier {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), ECDSA P-256 or Ed25519.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let parse = |reason| KeyError::Parse {
            path: path.display().to_string(),
            reason,
        };
        let block = pem::parse(read(path)?).map_err(|_| parse("not a PEM file"))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(parse("expected a PUBLIC KEY PEM block"));
        }
        let der = block.contents();
        let (key, alg) = match ParsedPublicKey::new(&ED25519, der) {
            Ok(k) => (k, "ed25519"),
            Err(_) => ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der)
                .map(|k| (k, "ecdsa-p256-sha256"))
                .map_err(|_| parse("not an ECDSA P-256 or Ed25519 public key"))?,
        };
        Ok(Self {
            key,
            alg,
            key_id: key_id(der),
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Checks the signature of checkpoint `cp`, the record at `seq`, `time` in `chain`.
    pub fn verify(&self, chain: &str, seq: u64, time: &str, cp: &Checkpoint) -> Result<(), String> {
        let Some(sig) = &cp.sig else {
            return Err("checkpoint is not signed".into());
        };
        if cp.alg != self.alg || cp.key_id.as_deref() != Some(&self.key_id) {
            return Err(format!(
                "checkpoint signed with {} key {}, not the given {} key {}",
                cp.alg,
                cp.key_id.as_deref().unwrap_or("?"),
                self.alg,
                self.key_id
            ));
        }
        let sig = B64
            .decode(sig)
            .map_err(|_| "checkpoint signature is not base64".to_owned())?;
        let message = signed_bytes(chain, seq, cp.count, &cp.head, time);
        self.key
            .verify_sig(&message, &sig)
            .map_err(|_| "checkpoint signature does not verify".to_owned())
    }
}
