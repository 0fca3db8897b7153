//! Fault injection: what the test changed about the server's behaviour, and the
//! responses an injected fault produces.

use std::{sync::Mutex, time::Duration};

use axum::{
    http::{HeaderValue, StatusCode},
    response::Response,
};
use serde_json::json;

use super::{
    FakeKube,
    status::{json_response, reason_for, status_body},
};

/// An injected failure answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this HTTP code and a Kubernetes `Status` body. 429 carries
    /// `Retry-After: 1` (and `details.retryAfterSeconds: 1`) like API priority and fairness.
    Status(u16),
}

impl Fault {
    pub(crate) fn response(self) -> Response {
        let Fault::Status(code) = self;
        let message = match code {
            429 => "Too many requests, please try again later.".to_string(),
            500 => "Internal error occurred: fault injected by the fake API server".to_string(),
            503 => "the server is currently unable to handle the request".to_string(),
            _ => format!("fault injected by the fake API server (HTTP {code})"),
        };
        let details = (code == 429).then(|| json!({ "retryAfterSeconds": 1 }));
        let body = status_body(code, reason_for(code), &message, details);
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(status, &body);
        if code == 429 {
            let headers = response.headers_mut();
            headers.insert("retry-after", HeaderValue::from_static("1"));
        }
        response
    }
}

/// How the next watch request fails, when the test asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchFailure {
    /// HTTP 200 with a single `ERROR` event carrying a 410 `Expired` Status, then the end.
    GoneEvent,
    /// HTTP 410 with a `Status` body.
    GoneHttp,
}

/// Everything a test can change at run time.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub latency: Duration,
    pub token_review_latency: Duration,
    pub token_review_fault: Option<Fault>,
    pub fault: Option<Fault>,
    pub ssar_allowed: bool,
    pub bookmark_interval: Duration,
    pub token_leeway: Duration,
    pub watch_failures: Vec<WatchFailure>,
    /// Event writes (create or patch) still to answer with HTTP 500.
    pub event_failures: u32,
    /// Faults answering every GET of one object of a resource (`serviceaccounts`, …).
    pub get_faults: std::collections::BTreeMap<String, Fault>,
    pub outage: super::outage::Outage,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            latency: Duration::ZERO,
            token_review_latency: Duration::ZERO,
            token_review_fault: None,
            fault: None,
            ssar_allowed: true,
            bookmark_interval: Duration::from_secs(1),
            // go-jose's default leeway, which kube-apiserver uses for exp/nbf/iat.
            token_leeway: Duration::from_secs(60),
            watch_failures: Vec::new(),
            event_failures: 0,
            get_faults: Default::default(),
            outage: super::outage::Outage::None,
        }
    }
}

#[derive(Default)]
pub(crate) struct Faults(Mutex<Settings>);

impl Faults {
    /// A snapshot of the current settings.
    pub(crate) fn get(&self) -> Settings {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Consumes one queued Event-write failure: true when this write must fail.
    pub(crate) fn take_event_failure(&self) -> bool {
        let mut settings = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let fail = settings.event_failures > 0;
        settings.event_failures = settings.event_failures.saturating_sub(1);
        fail
    }

    /// Takes the next queued watch failure, if any.
    pub(crate) fn take_watch_failure(&self) -> Option<WatchFailure> {
        let mut settings = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (!settings.watch_failures.is_empty()).then(|| settings.watch_failures.remove(0))
    }
}

/// Fault controls; each takes effect for the requests that arrive after it.
impl FakeKube {
    fn update(&self, change: impl FnOnce(&mut Settings)) {
        self.state().faults.update(change);
    }

    /// Extra latency for every TokenReview (counted as in flight while it waits).
    pub fn set_token_review_latency(&self, latency: Duration) {
        self.update(|s| s.token_review_latency = latency);
    }

    /// Answer every TokenReview with this fault (after its latency), or normally again.
    pub fn set_token_review_fault(&self, fault: Option<Fault>) {
        self.update(|s| s.token_review_fault = fault);
    }

    /// Latency before every request (authenticated or not) is handled.
    pub fn set_latency(&self, latency: Duration) {
        self.update(|s| s.latency = latency);
    }

    /// Answer every authenticated request with this fault, or normally again.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.update(|s| s.fault = fault);
    }

    /// Answer every GET of one object of `resource` (`serviceaccounts`, `nodes`, `pods`,
    /// `secrets`, `configmaps`) with this fault, or normally again.
    pub fn set_get_fault(&self, resource: &str, fault: Option<Fault>) {
        self.update(|s| match fault {
            Some(f) => {
                s.get_faults.insert(resource.to_owned(), f);
            }
            None => {
                s.get_faults.remove(resource);
            }
        });
    }

    pub fn set_ssar_allowed(&self, allowed: bool) {
        self.update(|s| s.ssar_allowed = allowed);
    }

    /// How often watches that asked for bookmarks get one (default 1 s; new watches only).
    pub fn set_bookmark_interval(&self, interval: Duration) {
        self.update(|s| s.bookmark_interval = interval);
    }

    /// Clock-skew leeway for `exp`/`nbf`/`iat` in TokenReview (default 60 s, as kube-apiserver).
    pub fn set_token_leeway(&self, leeway: Duration) {
        self.update(|s| s.token_leeway = leeway);
    }

    /// The next `n` Event writes (create or patch) are answered with HTTP 500.
    pub fn fail_next_event_writes(&self, n: u32) {
        self.update(|s| s.event_failures = n);
    }

    /// Cuts every open watch connection mid-stream (no final chunk, no TLS close_notify).
    pub fn drop_watches(&self) {
        self.state()
            .watch_drops
            .send_modify(|generation| *generation += 1);
    }

    /// The next watch request gets HTTP 200 with one `ERROR` event (Status 410 Expired,
    /// "too old resource version"), then the stream ends. Calls queue up.
    pub fn fail_next_watch_with_gone(&self) {
        self.update(|s| s.watch_failures.push(WatchFailure::GoneEvent));
    }

    /// The next watch request gets HTTP 410 with a Status body. Calls queue up.
    pub fn fail_next_watch_with_http_gone(&self) {
        self.update(|s| s.watch_failures.push(WatchFailure::GoneHttp));
    }
}
