//! Reload outcomes as Kubernetes Events on the issuer Secret.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::ReloadReporter;
use certmint_core::ca::Issuer;

/// Repeats of one (reason, note) are merged into a series; beyond this many distinct
/// notes the merge memory starts afresh.
const MAX_DISTINCT: usize = 64;
/// An Event write that fails (API server 500, timeout) is tried this many times in all,
/// waiting `FIRST_RETRY`, then twice as long each time. Retries run in their own task,
/// so a reload never waits for them.
const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// Records `IssuerUpdated` (Normal) and `IssuerUpdateSkipped` (Warning) Events.
///
/// kube's `Recorder` merges Events by reason alone and keeps the first note, so a second
/// rotation within minutes would show the old issuer. One recorder per distinct
/// (reason, note) keeps each note truthful while still merging exact repeats.
pub struct EventReporter {
    client: kube::Client,
    reporter: Reporter,
    recorders: Mutex<HashMap<(String, String), Recorder>>,
    secret: ObjectReference,
}

impl EventReporter {
    pub fn new(client: kube::Client, namespace: &str, secret: &str) -> Self {
        let reporter = Reporter {
            controller: "certmint".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let secret = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
            namespace: Some(namespace.into()),
            name: Some(secret.into()),
            ..ObjectReference::default()
        };
        Self {
            client,
            reporter,
            recorders: Mutex::default(),
            secret,
        }
    }

    fn publish(&self, type_: EventType, reason: &str, note: String) {
        let note = truncate(note);
        let recorder = {
            let mut map = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() >= MAX_DISTINCT {
                map.clear();
            }
            let key = (reason.to_owned(), note.clone());
            map.entry(key)
                .or_insert_with(|| Recorder::new(self.client.clone(), self.reporter.clone()))
                .clone()
        };
        let secret = self.secret.clone();
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reload".into(),
            secondary: None,
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let mut wait = FIRST_RETRY;
            for attempt in 1..=ATTEMPTS {
                match recorder.publish(&event, &secret).await {
                    Ok(()) => return,
                    Err(e) if attempt == ATTEMPTS => tracing::warn!(
                        reason = %event.reason,
                        attempts = ATTEMPTS,
                        error = %e,
                        "cannot record Kubernetes Event; giving up"
                    ),
                    Err(e) => {
                        tracing::debug!(reason = %event.reason, attempt, error = %e, "Event write failed; retrying");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
        });
    }
}

impl ReloadReporter for EventReporter {
    fn issuer_applied(&self, issuer: &Issuer) {
        let c = issuer.cert();
        let note = format!(
            "issuer {} (serial {}) applied; valid until {}",
            c.subject,
            c.serial_hex,
            certmint_core::ca::fmt_time(issuer.chain_not_after())
        );
        self.publish(EventType::Normal, "IssuerUpdated", note);
    }

    fn issuer_skipped(&self, reason: &str) {
        self.publish(
            EventType::Warning,
            "IssuerUpdateSkipped",
            format!("kept the current issuer: {reason}"),
        );
    }
}

/// Event notes are limited to 1 kB.
fn truncate(mut s: String) -> String {
    if s.len() > 1000 {
        let mut end = 1000;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
