//! The hash chain: each record's `prev` is the hex SHA-256 (the `sha2` crate) of the
//! previous line's exact bytes, newline excluded; `seq` counts from the `start` record.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::body::EncodedBody;
use super::record::{Body, NO_PREV, Start};
use certmint_core::digest::hex;

/// Hex SHA-256 of one line as written (without its newline).
pub fn line_hash(line: &[u8]) -> String {
    hex(&Sha256::digest(line))
}

/// A fresh random chain id (128 bits, hex).
pub fn new_chain_id() -> String {
    hex(&rand::random::<[u8; 16]>())
}

/// The writer's position in its chain. `Clone` so a batch that could not be written can
/// be rolled back.
#[derive(Clone, Debug)]
pub struct Chain {
    id: String,
    replica: String,
    next_seq: u64,
    head: String,
}

impl Chain {
    /// A new chain; `last_line` is the last line already in the file it continues, if any.
    pub fn new(replica: &str, last_line: Option<&[u8]>) -> Self {
        Self {
            id: new_chain_id(),
            replica: replica.to_owned(),
            next_seq: 0,
            head: last_line.map_or_else(|| NO_PREV.to_owned(), line_hash),
        }
    }

    /// The `start` record's body; `after` is the chain id the file's last line belongs to.
    pub fn start_body(after: Option<String>) -> Body {
        Body::Start(Start {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            after,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The replica name records of this chain carry.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Hash of the last sealed line (or of the line the chain follows).
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The `seq` the next sealed record gets (= records sealed so far).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Serialises `body` as the next record and advances the chain. Returns the line
    /// without its newline.
    pub fn seal(&mut self, body: Body, time: String) -> Vec<u8> {
        let mut line = Vec::new();
        self.seal_into(&mut line, &EncodedBody::new(&body), &time);
        line
    }

    /// Appends the next record, `body` under this chain's head fields, to `out` (without a
    /// newline) and advances the chain. The bytes are those of the whole
    /// [`Record`](super::record::Record) serialised.
    pub fn seal_into(&mut self, out: &mut Vec<u8>, body: &EncodedBody, time: &str) {
        let start = out.len();
        let head = Head {
            seq: self.next_seq,
            time,
            replica: &self.replica,
            chain: &self.id,
            prev: &self.head,
        };
        // Serialising plain structs of strings and integers cannot fail.
        let _ = serde_json::to_writer(&mut *out, &head);
        // `{"seq":…,"prev":"…"}` + `{"kind":…}` → `{"seq":…,"prev":"…","kind":…}`.
        if let Some(rest) = body.as_bytes().get(1..).filter(|r| *r != b"}") {
            out.pop();
            out.push(b',');
            out.extend_from_slice(rest);
        }
        self.head = line_hash(&out[start..]);
        self.next_seq += 1;
    }
}

/// The chain fields that open every record, in [`Record`](super::record::Record)'s order.
#[derive(Serialize)]
struct Head<'a> {
    seq: u64,
    time: &'a str,
    replica: &'a str,
    chain: &'a str,
    prev: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    #[test]
    fn each_record_links_to_the_bytes_of_the_one_before() {
        let mut chain = Chain::new("r-0", Some(b"old line"));
        let first = chain.seal(Chain::start_body(None), "t0".into());
        let second = chain.seal(Chain::start_body(None), "t1".into());
        let a: Record = serde_json::from_slice(&first).unwrap();
        let b: Record = serde_json::from_slice(&second).unwrap();
        assert_eq!(a.prev, line_hash(b"old line"));
        assert_eq!(b.prev, line_hash(&first));
        assert_eq!((a.seq, b.seq), (0, 1));
        assert_eq!(chain.head(), line_hash(&second));
        assert_eq!(a.chain, b.chain);
        assert_eq!(a.chain.len(), 32);
    }

    /// The writer splices a body serialised elsewhere under the chain fields: the line
    /// must be byte for byte what serialising the whole `Record` gives (the format
    /// `audit verify` and earlier files use).
    #[test]
    fn a_spliced_line_is_the_record_serialised_whole() {
        use crate::record::{CertFields, CertifyRecord, Checkpoint};
        let certify = CertifyRecord {
            api: "linkerd".into(),
            identity: "we\"b\u{1}.é…".into(),
            peer: Some("127.0.0.1:4143".into()),
            caller: None,
            code: "OK".into(),
            reason: "issued".into(),
            cert: Some(CertFields {
                serial: "0a".into(),
                not_before: "2026-11-30T00:00:00.000Z".into(),
                not_after: "2026-12-01T00:00:00.000Z".into(),
                sha256: "ab".repeat(32),
                spki_sha256: "cd".repeat(32),
                issuer_serial: "01".into(),
                issuer_sha256: "ef".repeat(32),
            }),
            request: None,
            undelivered: Some("UNAVAILABLE".into()),
        };
        let bodies = [
            Chain::start_body(Some("c0".into())),
            Chain::start_body(None),
            Body::Certify(Box::new(certify)),
            Body::Checkpoint(Checkpoint {
                head: "00".repeat(32),
                count: 2,
                alg: "none".into(),
                key_id: None,
                sig_v: None,
                sig: None,
                last: true,
            }),
        ];
        let mut chain = Chain::new("r-\"0\"", None);
        let mut out = Vec::new();
        for (i, body) in bodies.into_iter().enumerate() {
            let whole = Record {
                seq: chain.next_seq(),
                time: format!("t{i}"),
                replica: "r-\"0\"".into(),
                chain: chain.id().to_owned(),
                prev: chain.head().to_owned(),
                body: body.clone(),
            };
            out.clear();
            out.extend_from_slice(b"earlier lines\n");
            chain.seal_into(&mut out, &EncodedBody::new(&body), &format!("t{i}"));
            let line = &out[b"earlier lines\n".len()..];
            assert_eq!(
                String::from_utf8_lossy(line),
                String::from_utf8_lossy(&serde_json::to_vec(&whole).unwrap())
            );
            assert_eq!(chain.head(), line_hash(line));
            let back: Record = serde_json::from_slice(line).unwrap();
            assert_eq!(back, whole);
        }
    }
}
