//! The status a decision writes, and the one write: `PUT …/status` carrying the
//! resourceVersion it was decided on, retried on a conflict only while the request is
//! still undecided. A request someone else decided is never touched again.

use std::time::{Duration, SystemTime};

use super::decide::Refusal;
use super::request::{self, DENIED, FAILED, ISSUED};
use super::versioned::VersionedApi;
use k8s_openapi::api::certificates::v1::{PodCertificateRequest, PodCertificateRequestStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Attempts per decision (each conflict re-reads the request first).
const ATTEMPTS: usize = 5;

/// What an issued certificate writes.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// PEM, leaf first, then the intermediates.
    pub chain_pem: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub begin_refresh_at: SystemTime,
}

/// A decision, as written into the status.
#[derive(Clone, Debug)]
pub enum Decision {
    Issued(IssuedCert),
    Denied(Refusal),
    Failed(Refusal),
}

impl Decision {
    pub fn condition_type(&self) -> &'static str {
        match self {
            Decision::Issued(_) => ISSUED,
            Decision::Denied(_) => DENIED,
            Decision::Failed(_) => FAILED,
        }
    }

    /// The status this decision writes: one condition, and for `Issued` the chain and
    /// its times, all at once.
    pub fn status(&self, now: SystemTime, generation: Option<i64>) -> PodCertificateRequestStatus {
        let (reason, message) = match self {
            Decision::Issued(_) => ("Issued", "issued by certmint".to_owned()),
            Decision::Denied(r) | Decision::Failed(r) => (r.reason, r.message.clone()),
        };
        let condition = Condition {
            type_: self.condition_type().to_owned(),
            status: "True".into(),
            reason: reason.into(),
            message,
            last_transition_time: time(now),
            observed_generation: generation,
        };
        let mut status = PodCertificateRequestStatus {
            conditions: Some(vec![condition]),
            ..Default::default()
        };
        if let Decision::Issued(c) = self {
            status.certificate_chain = Some(c.chain_pem.clone());
            status.not_before = Some(time(c.not_before));
            status.not_after = Some(time(c.not_after));
            status.begin_refresh_at = Some(time(c.begin_refresh_at));
        }
        status
    }
}

/// How a write ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// This decision is the request's.
    Ours,
    /// Someone else (another replica) decided first, with this condition.
    Theirs(String),
    /// The request is gone.
    Deleted,
}

/// Why a decision could not be written (the request stays undecided; it is tried again).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("status update failed: {0}")]
    Api(#[source] kube::Error),
    #[error("status update kept conflicting")]
    Conflicts,
}

/// Writes `decision` on `pcr` (as last read). `before_each` runs before every attempt
/// (the write budget); `on_conflict` is told of each conflict.
pub async fn write<B, F>(
    api: &VersionedApi<PodCertificateRequest>,
    mut pcr: PodCertificateRequest,
    decision: &Decision,
    now: SystemTime,
    before_each: B,
    mut on_conflict: impl FnMut(),
) -> Result<Written, WriteError>
where
    B: Fn() -> F,
    F: Future<Output = ()>,
{
    let name = pcr.metadata.name.clone().unwrap_or_default();
    for attempt in 0..ATTEMPTS {
        if let Some(by) = request::decided(&pcr) {
            return Ok(Written::Theirs(by.to_owned()));
        }
        pcr.status = Some(decision.status(now, pcr.metadata.generation));
        before_each().await;
        match api.replace_status(&name, &pcr).await {
            Ok(_) => return Ok(Written::Ours),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                on_conflict();
                pcr = match api.get_opt(&name).await {
                    Ok(Some(fresh)) => fresh,
                    Ok(None) => return Ok(Written::Deleted),
                    Err(e) => return Err(WriteError::Api(e)),
                };
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Written::Deleted),
            Err(e) if attempt + 1 < ATTEMPTS && retryable(&e) => {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(e) => return Err(WriteError::Api(e)),
        }
    }
    Err(WriteError::Conflicts)
}

/// 429 and 5xx answers and transport failures are worth another try.
fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        _ => true,
    }
}

fn time(t: SystemTime) -> Time {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_writes_one_condition_and_the_chain_only_when_issued() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let issued = Decision::Issued(IssuedCert {
            chain_pem: "PEM".into(),
            not_before: at,
            not_after: at + Duration::from_secs(3600),
            begin_refresh_at: at + Duration::from_secs(1800),
        });
        let s = issued.status(at, Some(1));
        let c = s.conditions.as_ref().unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].type_.as_str(), c[0].status.as_str()),
            ("Issued", "True")
        );
        assert_eq!(c[0].observed_generation, Some(1));
        assert_eq!(s.certificate_chain.as_deref(), Some("PEM"));
        assert!(s.not_before.is_some() && s.not_after.is_some() && s.begin_refresh_at.is_some());
        let denied = Decision::Denied(Refusal::new("PodNotFound", "gone"));
        let s = denied.status(at, None);
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.reason.as_str(), c.message.as_str()),
            ("Denied", "PodNotFound", "gone")
        );
        assert!(s.certificate_chain.is_none() && s.not_after.is_none());
    }
}
