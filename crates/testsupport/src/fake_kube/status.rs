//! JSON responses and Kubernetes `Status` bodies, shaped like the real API server's.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// A JSON response with the given code and `Content-Type: application/json`.
pub(crate) fn json_response(code: StatusCode, body: &Value) -> Response {
    let mut response = (code, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A `Status` object (kind Status, apiVersion v1) as the API server sends it on failure.
pub(crate) fn status_body(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    body
}

/// A failure response carrying a `Status` body.
pub(crate) fn failure(code: u16, reason: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &status_body(code, reason, message, None))
}

/// `404 NotFound` for a named object, e.g. `secrets "issuer" not found`.
pub(crate) fn not_found(resource: &str, group: &str, name: &str) -> Response {
    let details = json!({ "name": name, "group": group, "kind": resource });
    let message = format!("{resource} \"{name}\" not found");
    let body = status_body(404, "NotFound", &message, Some(details));
    json_response(StatusCode::NOT_FOUND, &body)
}

/// `400 BadRequest` with the given message.
pub(crate) fn bad_request(message: &str) -> Response {
    failure(400, "BadRequest", message)
}

/// The reason the real API server puts in a `Status` for a given HTTP code.
pub(crate) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}
