//! Watches: a stream of JSON lines (`{"type":"ADDED","object":{...}}`) resumed from a
//! resourceVersion, with periodic BOOKMARKs, `timeoutSeconds` (a clean end), 410 Gone for
//! a resourceVersion older than the history, and abrupt cuts on `drop_watches`.

use std::{io, sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use serde_json::{Value, json};
use tokio::{
    sync::{broadcast::error::RecvError, mpsc},
    time::{Instant, interval_at, sleep_until},
};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    faults::WatchFailure,
    resources::ListQuery,
    selector::FieldSelector,
    server::ServerState,
    status::{bad_request, failure, status_body},
    store::{Change, Gone, Kind, WatchStart},
};

type Line = Result<Bytes, io::Error>;

/// Answers a watch request: a one-shot failure if one was injected or the resourceVersion
/// is too old, else a streaming response fed by a spawned task.
pub(crate) fn start(
    state: &Arc<ServerState>,
    (kind, api_version): (Kind, &'static str),
    ns: Option<String>,
    fields: FieldSelector,
    q: &ListQuery,
) -> Response {
    let from = match q.resource_version.as_deref() {
        None | Some("" | "0") => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => return bad_request(&format!("invalid resourceVersion {rv:?}")),
        },
    };
    let gone = Gone {
        requested: from.unwrap_or(0),
        oldest: state.store.current_rv(),
    };
    match state.faults.take_watch_failure() {
        Some(WatchFailure::GoneHttp) => return failure(410, "Expired", &too_old(&gone)),
        Some(WatchFailure::GoneEvent) => return one_shot(&gone_event(&gone)),
        None => {}
    }
    let start = match state.store.watch(kind, from) {
        Ok(start) => start,
        Err(gone) => return one_shot(&gone_event(&gone)),
    };
    let settings = state.faults.get();
    let (tx, rx) = mpsc::channel::<Line>(64);
    let task = WatchTask {
        kind,
        api_version,
        ns,
        fields,
        tx,
        seen: start.rv,
    };
    let options = Options {
        timeout: q.timeout_seconds.map(Duration::from_secs),
        bookmarks: q.allow_watch_bookmarks.unwrap_or(false),
        bookmark_interval: settings.bookmark_interval,
        initial_events_end: from.is_none() && q.send_initial_events.unwrap_or(false),
    };
    // Subscribe now, so a drop requested right after this request is answered is not missed.
    let drops = state.watch_drops.subscribe();
    let shutdown = state.shutdown.clone();
    tokio::spawn(task.run(start, options, drops, shutdown));
    streaming(Body::from_stream(ReceiverStream::new(rx)))
}

struct Options {
    timeout: Option<Duration>,
    bookmarks: bool,
    bookmark_interval: Duration,
    initial_events_end: bool,
}

struct WatchTask {
    kind: Kind,
    /// The apiVersion objects are sent as.
    api_version: &'static str,
    ns: Option<String>,
    fields: FieldSelector,
    tx: mpsc::Sender<Line>,
    /// Every change up to this resourceVersion has been seen (bookmarks report it).
    seen: u64,
}

impl WatchTask {
    async fn run(
        mut self,
        start: WatchStart,
        options: Options,
        mut drops: tokio::sync::watch::Receiver<u64>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let WatchStart {
            replay, mut live, ..
        } = start;
        for change in replay {
            if !self.send_change(&change).await {
                return;
            }
        }
        if options.initial_events_end && !self.send_bookmark(true).await {
            return;
        }
        let deadline = options.timeout.map(|t| Instant::now() + t);
        let period = options.bookmark_interval.max(Duration::from_millis(10));
        let mut bookmarks = interval_at(Instant::now() + period, period);
        loop {
            tokio::select! {
                // A cut wins over anything still queued, as a dead connection would.
                biased;
                _ = drops.changed() => return self.cut().await,
                _ = shutdown.changed() => return self.cut().await,
                _ = self.tx.closed() => return,
                change = live.recv() => match change {
                    Ok(change) => {
                        self.seen = change.rv;
                        if !self.send_change(&change).await {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Too slow to keep up: the real API server also ends such a watch.
                        let gone = Gone { requested: self.seen, oldest: self.seen + 1 };
                        let _ = self.tx.send(Ok(gone_event(&gone))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = bookmarks.tick(), if options.bookmarks => {
                    if !self.send_bookmark(false).await {
                        return;
                    }
                }
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => return,
            }
        }
    }

    /// Ends the response body with an error: hyper then drops the connection mid-body,
    /// without the last chunk and without a TLS close_notify.
    async fn cut(self) {
        let _ = self
            .tx
            .send(Err(io::Error::other("watch dropped by the fake")))
            .await;
    }

    async fn send_change(&self, change: &Change) -> bool {
        let in_scope = change.kind == self.kind
            && self
                .ns
                .as_deref()
                .is_none_or(|ns| change.object["metadata"]["namespace"] == ns);
        if !in_scope || !self.fields.matches(&change.object) {
            return true;
        }
        let event = if change.object["apiVersion"] == self.api_version {
            json!({ "type": change.change.as_str(), "object": change.object })
        } else {
            let mut object = change.object.clone();
            object["apiVersion"] = json!(self.api_version);
            json!({ "type": change.change.as_str(), "object": object })
        };
        self.tx.send(Ok(line(&event))).await.is_ok()
    }

    async fn send_bookmark(&self, initial_events_end: bool) -> bool {
        let mut metadata = json!({ "resourceVersion": self.seen.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let object = json!({ "kind": self.kind.name(), "apiVersion": "v1", "metadata": metadata });
        let event = json!({ "type": "BOOKMARK", "object": object });
        self.tx.send(Ok(line(&event))).await.is_ok()
    }
}

fn too_old(gone: &Gone) -> String {
    format!(
        "too old resource version: {} ({})",
        gone.requested, gone.oldest
    )
}

/// The `ERROR` event kube-apiserver sends for a resourceVersion it no longer has.
fn gone_event(gone: &Gone) -> Bytes {
    let status = status_body(410, "Expired", &too_old(gone), None);
    line(&json!({ "type": "ERROR", "object": status }))
}

fn line(event: &Value) -> Bytes {
    let mut text = event.to_string();
    text.push('\n');
    Bytes::from(text)
}

fn one_shot(body: &Bytes) -> Response {
    streaming(Body::from(body.clone()))
}

fn streaming(body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
