//! The hash chain: each record's `prev` is the hex SHA-256 (the `sha2` crate) of the
//! previous line's exact bytes, newline excluded; `seq` counts from the `start` record.

use sha2::{Digest, Sha256};

use super::record::{Body, NO_PREV, Record, Start};
use crate::ca::cert::hex;

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
        let record = Record {
            seq: self.next_seq,
            time,
            replica: self.replica.clone(),
            chain: self.id.clone(),
            prev: std::mem::take(&mut self.head),
            body,
        };
        // Serialising plain structs of strings and integers cannot fail.
        let line = serde_json::to_vec(&record).unwrap_or_default();
        self.head = line_hash(&line);
        self.next_seq += 1;
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
