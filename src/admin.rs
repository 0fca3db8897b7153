//! Admin HTTP: `/live`, `/ready`, `/metrics` and `/trust` (who trusts what, JSON).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use certmint_core::ca::CaStore;
use certmint_k8s::trust::{TrustIndex, TrustReport};

use crate::metrics::Metrics;
use crate::readiness::Readiness;

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    trust: Option<Arc<TrustIndex>>,
    store: CaStore,
}

/// The admin router; `trust` when the interlock is on.
pub fn router(
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    trust: Option<Arc<TrustIndex>>,
    store: CaStore,
) -> Router {
    Router::new()
        .route("/live", get(|| async { "live\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/trust", get(trust_json))
        .with_state(AdminState {
            metrics,
            readiness,
            trust,
            store,
        })
}

async fn trust_json(State(s): State<AdminState>) -> impl IntoResponse {
    let report = match &s.trust {
        Some(index) => index.report(s.store.load().as_deref()),
        None => TrustReport::default(),
    };
    axum::Json(report)
}

async fn ready(State(s): State<AdminState>) -> impl IntoResponse {
    match s.readiness.check() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    // The admin server runs on the serving runtime, so this counts the server's tasks.
    s.metrics.sample_runtime();
    if let Some(index) = &s.trust {
        let active = s.store.load().map(|st| st.issuer.anchor_fingerprint());
        index.sample(&s.metrics.kube, active);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}
