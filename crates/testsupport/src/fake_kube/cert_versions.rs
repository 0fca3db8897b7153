//! The `certificates.k8s.io` versions the fake serves PodCertificateRequests and
//! ClusterTrustBundles in (a 1.37 cluster: `v1`; a 1.36 cluster: `v1beta1`; both can be
//! on), the discovery document of each version (`GET /apis/certificates.k8s.io/VERSION`,
//! what kube's `list_api_group_resources` asks), and the extractor that tells a handler
//! which version a request names, answering 404 for a version that is off.

use std::sync::Arc;

use axum::{extract::FromRequestParts, http::StatusCode, http::request::Parts, response::Response};
use serde_json::{Value, json};

use super::{
    server::ServerState,
    status::{failure, json_response},
};

/// Which versions serve PodCertificateRequests and ClusterTrustBundles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CertificateVersions {
    /// Kubernetes 1.37 and later (the default).
    #[default]
    V1,
    /// Kubernetes 1.36 with the beta API enabled.
    V1beta1,
    Both,
}

impl CertificateVersions {
    fn serves(self, v: CertVersion) -> bool {
        matches!(
            (self, v),
            (Self::Both, _) | (Self::V1, CertVersion::V1) | (Self::V1beta1, CertVersion::V1beta1)
        )
    }

    /// The version a kubelet creates requests in: `v1` when served.
    pub(crate) fn preferred(self) -> CertVersion {
        match self {
            Self::V1beta1 => CertVersion::V1beta1,
            Self::V1 | Self::Both => CertVersion::V1,
        }
    }
}

/// The version a request's path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CertVersion {
    V1,
    V1beta1,
}

impl CertVersion {
    pub(crate) const ALL: [CertVersion; 2] = [CertVersion::V1, CertVersion::V1beta1];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CertVersion::V1 => "v1",
            CertVersion::V1beta1 => "v1beta1",
        }
    }

    pub(crate) fn api_version(self) -> &'static str {
        match self {
            CertVersion::V1 => "certificates.k8s.io/v1",
            CertVersion::V1beta1 => "certificates.k8s.io/v1beta1",
        }
    }

    /// `object` as served in this version.
    pub(crate) fn stamp(self, mut object: Value) -> Value {
        object["apiVersion"] = json!(self.api_version());
        object
    }
}

fn not_found() -> Response {
    failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// `/apis/certificates.k8s.io/VERSION/…`: the version, or 404 when it is not served.
impl FromRequestParts<Arc<ServerState>> for CertVersion {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, Self::Rejection> {
        let named = match parts.uri.path().split('/').nth(3) {
            Some("v1") => CertVersion::V1,
            Some("v1beta1") => CertVersion::V1beta1,
            _ => return Err(not_found()),
        };
        if state.pcr_faults.versions().serves(named) {
            Ok(named)
        } else {
            Err(not_found())
        }
    }
}

/// `GET /apis/certificates.k8s.io/VERSION`: the resource list. `v1` always exists (it has
/// CertificateSigningRequests since 1.19) and lists the two kinds only when they are served
/// there; `v1beta1` exists only when they are.
pub(crate) async fn discovery(
    axum::extract::State(state): axum::extract::State<Arc<ServerState>>,
    axum::extract::Path(version): axum::extract::Path<String>,
) -> Response {
    let v = match version.as_str() {
        "v1" => CertVersion::V1,
        "v1beta1" => CertVersion::V1beta1,
        _ => return not_found(),
    };
    let served = state.pcr_faults.versions().serves(v);
    let mut resources = Vec::new();
    if v == CertVersion::V1 {
        resources.push(resource("certificatesigningrequests", false));
    }
    if served {
        resources.push(resource("podcertificaterequests", true));
        resources.push(resource("podcertificaterequests/status", true));
        resources.push(resource("clustertrustbundles", false));
    }
    if resources.is_empty() {
        return not_found();
    }
    let body = json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": v.api_version(),
        "resources": resources,
    });
    json_response(StatusCode::OK, &body)
}

fn resource(name: &str, namespaced: bool) -> Value {
    let base = name.split('/').next().unwrap_or(name);
    let kind = match base {
        "certificatesigningrequests" => "CertificateSigningRequest",
        "podcertificaterequests" => "PodCertificateRequest",
        _ => "ClusterTrustBundle",
    };
    let (singular, verbs) = if name.contains('/') {
        ("", json!(["get", "patch", "update"]))
    } else {
        (
            base.trim_end_matches('s'),
            json!([
                "create", "delete", "get", "list", "patch", "update", "watch"
            ]),
        )
    };
    json!({
        "name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
        "verbs": verbs,
    })
}
