//! Reload outcomes as Kubernetes Events on the issuer Secret.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::ReloadReporter;
use crate::ca::Issuer;

/// Records `IssuerUpdated` (Normal) and `IssuerUpdateSkipped` (Warning) Events.
pub struct EventReporter {
    recorder: Recorder,
    secret: ObjectReference,
}

impl EventReporter {
    pub fn new(client: kube::Client, namespace: &str, secret: &str) -> Self {
        let reporter = Reporter { controller: "certmint".into(), instance: std::env::var("POD_NAME").ok() };
        let secret = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
            namespace: Some(namespace.into()),
            name: Some(secret.into()),
            ..ObjectReference::default()
        };
        Self { recorder: Recorder::new(client, reporter), secret }
    }

    fn publish(&self, type_: EventType, reason: &str, note: String) {
        let (recorder, secret) = (self.recorder.clone(), self.secret.clone());
        let event = Event { type_, reason: reason.into(), note: Some(truncate(note)), action: "Reload".into(), secondary: None };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        rt.spawn(async move {
            if let Err(e) = recorder.publish(&event, &secret).await {
                tracing::warn!(error = %e, "cannot record Kubernetes Event");
            }
        });
    }
}

impl ReloadReporter for EventReporter {
    fn issuer_applied(&self, issuer: &Issuer) {
        let c = issuer.cert();
        let note = format!("issuer {} (serial {}) applied; valid until {}", c.subject, c.serial_hex, crate::ca::fmt_time(issuer.chain_not_after()));
        self.publish(EventType::Normal, "IssuerUpdated", note);
    }

    fn issuer_skipped(&self, reason: &str) {
        self.publish(EventType::Warning, "IssuerUpdateSkipped", format!("kept the current issuer: {reason}"));
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
