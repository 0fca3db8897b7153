//! Digests and encodings shared by every layer: SHA-256 (aws-lc's implementation),
//! lowercase hex for serials and fingerprints, Unix seconds for metrics and records.

use std::time::{SystemTime, UNIX_EPOCH};

/// Lowercase hex, for serials and fingerprints.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Seconds since the Unix epoch, saturating at the epoch for earlier times.
pub fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// SHA-256 of `bytes`, with aws-lc's assembly implementation.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha256_parts(&[bytes])
}

/// SHA-256 over the concatenation of `parts`.
pub fn sha256_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
