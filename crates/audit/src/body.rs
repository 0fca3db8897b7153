//! A record body serialised apart from its chain fields, so that Certify's task does the
//! serialising and the writer thread only splices (see [`crate::chain`]).

use serde::Serialize;

/// A record body serialised on its own, `{"kind":…,…}`: what
/// [`Record`](super::record::Record) flattens after its chain fields. Made by whoever has
/// the body (Certify's task), so that the writer thread only splices it in.
#[derive(Debug)]
pub struct EncodedBody(Vec<u8>);

impl EncodedBody {
    /// `body` is a [`Body`] or, for Certify, a
    /// [`CertifyView`](super::record::CertifyView) (serialised as `Body::Certify`).
    pub fn new<T: Serialize + ?Sized>(body: &T) -> Self {
        // Room for a certify record in one allocation, below glibc's large-chunk size
        // (1 KiB), which would make it consolidate its free lists.
        let mut buf = Vec::with_capacity(1000);
        // Plain structs of strings and integers cannot fail to serialise; `kind` is always
        // there, so the object is never empty.
        if serde_json::to_writer(&mut buf, body).is_err() {
            buf = b"{}".to_vec();
        }
        Self(buf)
    }

    /// The serialised object.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Marks a certify record's certificate as not delivered: the caller was answered
    /// `code` (a gRPC code name) instead. Appends `"undelivered"`, the last field of
    /// [`CertifyRecord`](super::record::CertifyRecord).
    pub fn mark_undelivered(&mut self, code: &str) {
        if self.0.last() == Some(&b'}') {
            self.0.pop();
            self.0.extend_from_slice(b",\"undelivered\":");
            // A string always serialises.
            let _ = serde_json::to_writer(&mut self.0, code);
            self.0.push(b'}');
        }
    }

    /// The buffer back, to be freed (or reused) by the thread that made it.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}
