//! Two statuses tonic produces before any handler runs are rewritten, wherever tonic puts
//! them (the headers of a trailers-only answer, or the trailers):
//! - a message over the decoding limit is OUT_OF_RANGE; the gRPC spec (and clients'
//!   handling of it) expect RESOURCE_EXHAUSTED;
//! - protobuf that does not decode is INTERNAL, which operators alert on for signing
//!   failures: it is the client's fault, so INVALID_ARGUMENT, counted in
//!   `certmint_grpc_malformed_requests`. A truncated or wrongly flagged gRPC frame is
//!   treated the same way.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};

use crate::metrics::Metrics;

/// Rewrites both statuses in a response.
pub fn map_response<B>(resp: Response<B>, metrics: &Arc<Metrics>) -> Response<StatusFix<B>> {
    let (mut parts, body) = resp.into_parts();
    fix(&mut parts.headers, metrics);
    let body = StatusFix {
        inner: body,
        metrics: metrics.clone(),
    };
    Response::from_parts(parts, body)
}

/// tonic's INTERNAL messages for a request body it could not decode (tonic-prost's
/// protobuf errors and tonic's framing errors). The gRPC compression spec asks for INTERNAL
/// on a compressed flag without grpc-encoding; it is still the client's fault, so it too
/// becomes INVALID_ARGUMENT.
const MALFORMED: &[&str] = &[
    "failed to decode Protobuf message",
    "Unexpected EOF decoding stream",
    "protocol error: received message with",
    "Error decompressing",
];

fn fix(h: &mut HeaderMap, metrics: &Metrics) {
    let Some(status) = h.get("grpc-status") else {
        return;
    };
    let says = |text: &str| {
        let encoded = text.replace(' ', "%20");
        h.get("grpc-message").is_some_and(|m| {
            let m = m.as_bytes();
            contains(m, text.as_bytes()) || contains(m, encoded.as_bytes())
        })
    };
    if status == "11" && says("too large") {
        h.insert("grpc-status", HeaderValue::from_static("8"));
    } else if status == "13" && MALFORMED.iter().any(|m| says(m)) {
        metrics.grpc_malformed_requests.inc();
        h.insert("grpc-status", HeaderValue::from_static("3"));
        h.insert(
            "grpc-message",
            HeaderValue::from_static(
                "request%20is%20not%20valid%20protobuf%20for%20this%20method;%20fix%20the%20client",
            ),
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pin_project_lite::pin_project! {
    /// A response body whose trailers get the same rewrite.
    pub struct StatusFix<B> {
        #[pin]
        inner: B,
        metrics: Arc<Metrics>,
    }
}

impl<B: Body> Body for StatusFix<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let metrics = this.metrics;
        this.inner.poll_frame(cx).map(|f| {
            f.map(|r| {
                r.map(|mut frame| {
                    if let Some(t) = frame.trailers_mut() {
                        fix(t, metrics);
                    }
                    frame
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
