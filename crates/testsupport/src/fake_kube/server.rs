//! The shared server state and the HTTP routes, behind one gate that applies the injected
//! latency, checks the bearer token, counts the request and applies the injected fault.

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use serde_json::json;
use tokio::sync::watch;

use super::{
    cert_versions::{self, CertVersion},
    certificates::{self, PcrFaults},
    counters::{Counters, RequestKind},
    events::{self, CORE, EVENTS_V1, EventLog},
    faults::Faults,
    outage::Outage,
    resources, review,
    signing::KeyRing,
    status::{failure, json_response},
    store::Store,
    tokens::ISSUER,
    trust_bundles,
};

pub(crate) struct ServerState {
    pub admin_token: String,
    pub store: Store,
    pub events: EventLog,
    pub keys: KeyRing,
    /// `namespace/pod` names whose tokens TokenReview refuses (the pod was deleted).
    pub revoked: std::sync::Mutex<std::collections::HashSet<String>>,
    pub faults: Faults,
    pub counters: Counters,
    pub shutdown: watch::Receiver<bool>,
    /// Bumped by `drop_watches`; every open watch cuts its connection.
    pub watch_drops: watch::Sender<u64>,
    pub pcr_faults: PcrFaults,
}

type St = State<Arc<ServerState>>;
type Ns = Path<String>;
type NsName = Path<(String, String)>;
type ListQ = Result<
    axum::extract::Query<super::resources::ListQuery>,
    axum::extract::rejection::QueryRejection,
>;

pub(crate) fn router(state: Arc<ServerState>) -> Router {
    let ns = "/api/v1/namespaces/{ns}";
    let events_v1 = "/apis/events.k8s.io/v1/namespaces/{ns}/events";
    Router::new()
        .route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(review::token_review),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            post(review::self_subject_access_review),
        )
        .route(&format!("{ns}/{{resource}}"), get(resources::namespaced))
        .route(
            &format!("{ns}/{{resource}}/{{name}}"),
            get(resources::get_one),
        )
        .route("/api/v1/{resource}", get(resources::cluster_wide))
        .route(
            &format!("{ns}/pods/{{target}}/proxy/{{*path}}"),
            get(pod_proxy),
        )
        .route(
            "/api/v1/{resource}/{name}",
            get(resources::get_cluster_scoped),
        )
        .route(
            &format!("{ns}/events"),
            post(|s: St, p: Ns, b: Bytes| events::create(CORE, s, p, b))
                .get(|s: St, p: Ns| events::list(CORE, s, p)),
        )
        .route(
            &format!("{ns}/events/{{name}}"),
            get(|s: St, p: NsName| events::get_one(CORE, s, p))
                .patch(|s: St, p: NsName, h: HeaderMap, b: Bytes| events::patch(CORE, s, p, h, b)),
        )
        .route(
            events_v1,
            post(|s: St, p: Ns, b: Bytes| events::create(EVENTS_V1, s, p, b))
                .get(|s: St, p: Ns| events::list(EVENTS_V1, s, p)),
        )
        .route(
            &format!("{events_v1}/{{name}}"),
            get(|s: St, p: NsName| events::get_one(EVENTS_V1, s, p)).patch(
                |s: St, p: NsName, h: HeaderMap, b: Bytes| events::patch(EVENTS_V1, s, p, h, b),
            ),
        )
        .merge(certificate_routes())
        .route("/openid/v1/jwks", get(jwks))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .method_not_allowed_fallback(|| async {
            failure(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        })
        .fallback(|| async {
            failure(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// certificates.k8s.io: the discovery document of each version, and PodCertificateRequests
/// and ClusterTrustBundles in `v1` and `v1beta1` (a version not served answers 404).
fn certificate_routes() -> Router<Arc<ServerState>> {
    let discovery = Router::new().route(
        "/apis/certificates.k8s.io/{version}",
        get(cert_versions::discovery),
    );
    CertVersion::ALL
        .into_iter()
        .fold(discovery, |r, v| r.merge(versioned_certificate_routes(v)))
}

fn versioned_certificate_routes(v: CertVersion) -> Router<Arc<ServerState>> {
    use super::store::Kind;
    let base = format!("/apis/certificates.k8s.io/{}", v.as_str());
    let pcrs = format!("{base}/namespaces/{{ns}}/podcertificaterequests");
    Router::new()
        .route(
            &format!("{base}/podcertificaterequests"),
            get(|v: CertVersion, s: St, q: ListQ| {
                certificates::list_all(Kind::PodCertificateRequest, v, s, q)
            }),
        )
        .route(
            &pcrs,
            get(certificates::list_namespaced).post(certificates::create_request),
        )
        .route(&format!("{pcrs}/{{name}}"), get(certificates::get_request))
        .route(
            &format!("{pcrs}/{{name}}/status"),
            axum::routing::put(certificates::update_status),
        )
        .route(
            &format!("{base}/clustertrustbundles"),
            get(|v: CertVersion, s: St, q: ListQ| {
                certificates::list_all(Kind::ClusterTrustBundle, v, s, q)
            })
            .post(trust_bundles::create_bundle),
        )
        .route(
            &format!("{base}/clustertrustbundles/{{name}}"),
            get(trust_bundles::get_bundle).put(trust_bundles::replace_bundle),
        )
}

impl ServerState {
    pub(crate) fn revoked_pods(&self) -> std::collections::HashSet<String> {
        self.revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn gate(State(state): St, request: Request, next: Next) -> Response {
    let settings = state.faults.get();
    if settings.outage == Outage::ServerErrors {
        let line = format!("{} {}", request.method(), request.uri());
        state.counters.record(RequestKind::Other, line);
        return failure(500, "InternalError", "fake API server outage");
    }
    if !settings.latency.is_zero() {
        tokio::time::sleep(settings.latency).await;
    }
    let line = format!("{} {}", request.method(), request.uri());
    if !authorized(&state, request.headers()) {
        state.counters.record(RequestKind::Unauthorized, line);
        return failure(401, "Unauthorized", "Unauthorized");
    }
    let uri = request.uri();
    let kind = RequestKind::classify(request.method(), uri.path(), uri.query().unwrap_or(""));
    state.counters.record(kind, line);
    if let Some(fault) = settings.fault {
        return fault.response();
    }
    next.run(request).await
}

fn authorized(state: &ServerState, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    presented == Some(state.admin_token.as_str())
}

/// `GET …/pods/NAME:PORT/proxy/PATH`: every fake pod runs on loopback, so the request
/// goes to `127.0.0.1:PORT/PATH` when the pod exists (as the API server proxies to the
/// pod's IP).
async fn pod_proxy(
    State(state): St,
    Path((ns, target, path)): Path<(String, String, String)>,
) -> Response {
    use http_body_util::{BodyExt, Empty};
    let target = target.strip_prefix("http:").unwrap_or(&target);
    let Some((name, port)) = target
        .rsplit_once(':')
        .and_then(|(n, p)| Some((n, p.parse::<u16>().ok()?)))
    else {
        return failure(400, "BadRequest", "the fake proxies NAME:PORT only");
    };
    if state
        .store
        .get(super::store::Kind::Pod, &ns, name)
        .is_none()
    {
        return failure(404, "NotFound", &format!("pods \"{name}\" not found"));
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let uri = format!("http://127.0.0.1:{port}/{path}");
    let answer = match uri.parse() {
        Ok(uri) => tokio::time::timeout(std::time::Duration::from_secs(10), client.get(uri)).await,
        Err(_) => return failure(400, "BadRequest", "bad proxy path"),
    };
    let Ok(Ok(answer)) = answer else {
        return failure(
            503,
            "ServiceUnavailable",
            &format!("error trying to reach service: {uri}"),
        );
    };
    let status = answer.status();
    match answer.into_body().collect().await {
        Ok(body) => Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body.to_bytes()))
            .unwrap_or_default(),
        Err(_) => failure(503, "ServiceUnavailable", "the pod's answer broke off"),
    }
}

async fn jwks(State(state): St) -> Response {
    json_response(StatusCode::OK, &state.keys.jwks())
}

async fn openid_configuration() -> Response {
    let body = json!({
        "issuer": ISSUER,
        "jwks_uri": format!("{ISSUER}/openid/v1/jwks"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
    });
    json_response(StatusCode::OK, &body)
}
