//! Checkpoint signatures with a dedicated audit key (ECDSA P-256 or Ed25519, aws-lc-rs;
//! never the issuer key). A checkpoint with `"sig_v":2` signs [`signed_bytes_v2`]:
//! `certmint-audit-checkpoint-v2\n` followed by the whole record as serialised without
//! `sig`, so every field (`last`, `replica`, `alg`, `key_id` included) is covered. Files
//! written before v2 carry no `sig_v`; their signatures cover [`signed_bytes`] (v1), one
//! ASCII line per field:
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
use super::record::{Body, Checkpoint, Record};
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

/// The signed form this version writes.
pub const SIG_V2: u32 = 2;

/// The bytes a v2 checkpoint signature covers: a domain line, then `record` serialised
/// (field order of [`Record`]) with its `sig` left out.
pub fn signed_bytes_v2(record: &Record) -> Vec<u8> {
    let mut unsigned = record.clone();
    if let Body::Checkpoint(cp) = &mut unsigned.body {
        cp.sig = None;
    }
    let mut out = b"certmint-audit-checkpoint-v2\n".to_vec();
    // Plain structs of strings and integers cannot fail to serialise.
    let _ = serde_json::to_writer(&mut out, &unsigned);
    out
}

/// The next checkpoint of `chain` (sealed at `time`), signed (v2) when a signer is given.
pub fn checkpoint(signer: Option<&AuditSigner>, chain: &Chain, time: &str, last: bool) -> Body {
    let (seq, head) = (chain.next_seq(), chain.head().to_owned());
    let unsigned = Checkpoint {
        head: head.clone(),
        count: seq,
        alg: UNSIGNED.to_owned(),
        key_id: None,
        sig_v: None,
        sig: None,
        last,
    };
    let Some(signer) = signer else {
        return Body::Checkpoint(unsigned);
    };
    let mut record = Record {
        seq,
        time: time.to_owned(),
        replica: chain.replica().to_owned(),
        chain: chain.id().to_owned(),
        prev: head,
        body: Body::Checkpoint(Checkpoint {
            alg: signer.alg().to_owned(),
            key_id: Some(signer.key_id.clone()),
            sig_v: Some(SIG_V2),
            ..unsigned.clone()
        }),
    };
    let sig = signer.sign(&signed_bytes_v2(&record));
    match (&mut record.body, sig) {
        (Body::Checkpoint(cp), Some(sig)) => {
            cp.sig = Some(B64.encode(sig));
            record.body
        }
        _ => Body::Checkpoint(unsigned),
    }
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

    /// Checks the signature of checkpoint `cp`, the body of `record`: over the whole record
    /// (v2), or over its chain, seq, count, head and time for files written before v2.
    pub fn verify(&self, record: &Record, cp: &Checkpoint) -> Result<(), String> {
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
        let message = match cp.sig_v {
            None => signed_bytes(&record.chain, record.seq, cp.count, &cp.head, &record.time),
            Some(SIG_V2) => signed_bytes_v2(record),
            Some(v) => {
                return Err(format!(
                    "checkpoint signature form v{v} is unknown to this certmint; use a newer `certmint audit verify`"
                ));
            }
        };
        self.key
            .verify_sig(&message, &sig)
            .map_err(|_| "checkpoint signature does not verify".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ed25519 audit key pair written as PEM files in `dir`.
    fn keys(dir: &Path) -> (AuditSigner, AuditVerifier) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let (private, public) = (dir.join("k.key"), dir.join("k.pub"));
        let block = |tag: &str, der: &[u8]| pem::encode(&pem::Pem::new(tag, der.to_vec()));
        std::fs::write(&private, block("PRIVATE KEY", pkcs8.as_ref())).unwrap();
        std::fs::write(&public, block("PUBLIC KEY", spki.as_ref())).unwrap();
        (
            AuditSigner::from_file(&private).unwrap(),
            AuditVerifier::from_file(&public).unwrap(),
        )
    }

    fn sealed(signer: &AuditSigner, last: bool) -> Record {
        let mut chain = Chain::new("r-0", None);
        chain.seal(Chain::start_body(None), "t0".into());
        let body = checkpoint(Some(signer), &chain, "t1", last);
        let line = chain.seal(body, "t1".into());
        serde_json::from_slice(&line).unwrap()
    }

    fn verified(key: &AuditVerifier, r: &Record) -> Result<(), String> {
        let Body::Checkpoint(cp) = &r.body else {
            panic!("not a checkpoint")
        };
        key.verify(r, cp)
    }

    #[test]
    fn a_v2_signature_covers_every_field_of_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (signer, key) = keys(dir.path());
        let closing = sealed(&signer, true);
        verified(&key, &closing).unwrap();
        let edits: [fn(&mut Record); 6] = [
            |r| r.replica = "r-1".into(),
            |r| r.time = "t2".into(),
            |r| r.prev = "00".repeat(32),
            |r| match &mut r.body {
                Body::Checkpoint(cp) => cp.last = false,
                _ => unreachable!(),
            },
            |r| match &mut r.body {
                Body::Checkpoint(cp) => cp.count += 1,
                _ => unreachable!(),
            },
            |r| match &mut r.body {
                Body::Checkpoint(cp) => cp.key_id = Some("00".repeat(8)),
                _ => unreachable!(),
            },
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut forged = closing.clone();
            edit(&mut forged);
            assert!(verified(&key, &forged).is_err(), "edit {i} verified");
        }
    }

    #[test]
    fn a_v1_signature_from_an_older_file_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (signer, key) = keys(dir.path());
        let mut r = sealed(&signer, true);
        let Body::Checkpoint(cp) = &mut r.body else {
            panic!("not a checkpoint")
        };
        cp.sig_v = None;
        let v1 = signed_bytes(&r.chain, r.seq, cp.count, &cp.head, &r.time);
        cp.sig = Some(B64.encode(signer.sign(&v1).unwrap()));
        verified(&key, &r).unwrap();
        // v1 never covered `last`: that is what v2 is for.
        if let Body::Checkpoint(cp) = &mut r.body {
            cp.last = false;
        }
        verified(&key, &r).unwrap();
    }
}
