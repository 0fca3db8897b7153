//! tonic answers a message over the decoding limit with OUT_OF_RANGE; the gRPC spec (and
//! clients' handling of it) expect RESOURCE_EXHAUSTED. This layer rewrites that one status,
//! wherever tonic puts it: in the headers (trailers-only) or in the trailers.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};

/// Rewrites an over-limit OUT_OF_RANGE to RESOURCE_EXHAUSTED in a response.
pub fn map_response<B>(resp: Response<B>) -> Response<OversizeStatus<B>> {
    let (mut parts, body) = resp.into_parts();
    fix(&mut parts.headers);
    Response::from_parts(parts, OversizeStatus { inner: body })
}

fn fix(h: &mut HeaderMap) {
    let out_of_range = h.get("grpc-status").is_some_and(|v| v == "11");
    let too_large = h.get("grpc-message").is_some_and(|m| {
        let m = m.as_bytes();
        m.windows(9).any(|w| w == b"too large") || m.windows(11).any(|w| w == b"too%20large")
    });
    if out_of_range && too_large {
        h.insert("grpc-status", HeaderValue::from_static("8"));
    }
}

pin_project_lite::pin_project! {
    /// A response body whose trailers get the same rewrite.
    pub struct OversizeStatus<B> {
        #[pin]
        inner: B,
    }
}

impl<B: Body> Body for OversizeStatus<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx).map(|f| {
            f.map(|r| {
                r.map(|mut frame| {
                    if let Some(t) = frame.trailers_mut() {
                        fix(t);
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
