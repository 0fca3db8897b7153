//! `certmint audit find`: the Certify records matching an identity, a serial or a time.

use std::time::SystemTime;

use super::load::AuditFile;
use super::record::{Body, CertifyRecord, Record};

/// What to look for; every given criterion must match.
#[derive(Debug, Default, Clone)]
pub struct Query {
    /// A Linkerd identity, or `NAMESPACE/SERVICE_ACCOUNT` of the authenticated caller.
    pub identity: Option<String>,
    /// A certificate serial in hex (case, colons and leading zeros do not matter).
    pub serial: Option<String>,
    /// Records written at or after this time.
    pub since: Option<SystemTime>,
}

/// A matching record and the raw line it came from.
pub struct Found<'a> {
    pub record: &'a Record,
    pub certify: &'a CertifyRecord,
    pub line: &'a [u8],
}

fn normal_serial(s: &str) -> String {
    let hex: String = s
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex.trim_start_matches('0').to_owned()
}

impl Query {
    fn matches(&self, r: &Record, c: &CertifyRecord) -> bool {
        let identity = self.identity.as_deref().is_none_or(|want| {
            c.identity == want
                || c.caller.as_ref().is_some_and(|a| {
                    want.split_once('/') == Some((a.namespace.as_str(), a.service_account.as_str()))
                })
        });
        let serial = self.serial.as_deref().is_none_or(|want| {
            let want = normal_serial(want);
            c.cert
                .as_ref()
                .is_some_and(|cert| normal_serial(&cert.serial) == want)
        });
        let since = self.since.is_none_or(|t| {
            humantime::parse_rfc3339_weak(&r.time).is_ok_and(|written| written >= t)
        });
        identity && serial && since
    }
}

/// Every Certify record in `files` (in file order) that matches `query`.
pub fn find<'a>(files: &'a [AuditFile], query: &Query) -> Vec<Found<'a>> {
    files
        .iter()
        .flat_map(|f| f.lines.iter())
        .filter_map(|l| {
            let record = l.record.as_ref()?;
            let Body::Certify(certify) = &record.body else {
                return None;
            };
            query.matches(record, certify).then_some(Found {
                record,
                certify,
                line: &l.bytes,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::normal_serial;

    #[test]
    fn serials_compare_without_case_colons_or_leading_zeros() {
        assert_eq!(normal_serial("00:AB:0c"), normal_serial("ab0C"));
        assert_ne!(normal_serial("ab0c"), normal_serial("ab0d"));
    }
}
