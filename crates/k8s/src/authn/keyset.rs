//! The API server's service-account signing keys, read through the Kubernetes client:
//! issuer discovery (`/.well-known/openid-configuration`), then the JWKS it names. Fetched
//! at start, periodically, and when a token carries an unknown `kid` (single-flight, at
//! most one fetch per `min_interval` however many such tokens arrive).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use futures::AsyncReadExt;
use serde::Deserialize;
use tokio::sync::{Mutex, watch};

use super::jws::{self, PublicKey};
use crate::metrics::{Fetch, Metrics};

/// The path the API server serves its key set on, whatever `jwks_uri` says.
pub const DEFAULT_JWKS_PATH: &str = "/openid/v1/jwks";
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
const MAX_DOCUMENT: u64 = 256 * 1024;
const MAX_KEYS: usize = 64;

/// Why the key set could not be refreshed.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    #[error("fetching {path} failed: {reason}")]
    Fetch { path: &'static str, reason: String },
    #[error("the API server's {0} is larger than 256 KiB")]
    TooLarge(&'static str),
    #[error("the discovery document is invalid: {0}")]
    Discovery(String),
    #[error(transparent)]
    Jwks(#[from] jws::JwsError),
    #[error("fetching the key set timed out")]
    Timeout,
}

/// A loaded key set and the issuer whose tokens it verifies.
pub struct Keys {
    pub issuer: String,
    pub keys: Vec<PublicKey>,
}

impl Keys {
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// What a look-up of an unknown `kid` found.
pub enum KidLookup {
    Known(Arc<Keys>),
    Unknown,
    /// The key set could not be fetched: the `kid` may be a new key.
    FetchFailed,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: Option<String>,
}

/// Holds the current key set; readers never block.
pub struct KeySet {
    client: kube::Client,
    issuer_override: Option<String>,
    current: ArcSwapOption<Keys>,
    last_fetch: Mutex<Option<Instant>>,
    generation: AtomicU64,
    last_ok: AtomicBool,
    min_interval: Duration,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl KeySet {
    pub fn new(
        client: kube::Client,
        issuer_override: Option<String>,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            issuer_override,
            current: ArcSwapOption::empty(),
            last_fetch: Mutex::new(None),
            generation: AtomicU64::new(0),
            last_ok: AtomicBool::new(false),
            min_interval: Duration::from_secs(1),
            timeout,
            metrics,
        }
    }

    pub fn current(&self) -> Option<Arc<Keys>> {
        self.current.load_full()
    }

    /// How many fetches have completed (successful or not); see [`KeySet::lookup_kid`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Fetches now (the periodic refresh), at most once per `min_interval`.
    pub async fn refresh(&self) -> Result<(), KeySetError> {
        let mut last = self.last_fetch.lock().await;
        self.fetch_locked(&mut last).await
    }

    /// For a token whose `kid` was not in the set seen at generation `seen`: if no fetch has
    /// completed since, fetch (waiting out `min_interval` first, single-flight); then say
    /// whether the `kid` is known. A flood of unknown kids costs one fetch per interval.
    pub async fn lookup_kid(&self, kid: &str, seen: u64) -> KidLookup {
        let mut last = self.last_fetch.lock().await;
        if self.generation() == seen {
            if let Some(t) = *last {
                tokio::time::sleep(self.min_interval.saturating_sub(t.elapsed())).await;
            }
            if let Err(e) = self.fetch_locked(&mut last).await {
                tracing::debug!(error = %e, "key set refresh for an unknown kid failed");
            }
        }
        drop(last);
        match self.current() {
            Some(k) if k.has_kid(kid) => KidLookup::Known(k),
            _ if !self.last_ok.load(Ordering::Acquire) => KidLookup::FetchFailed,
            _ => KidLookup::Unknown,
        }
    }

    async fn fetch_locked(&self, last: &mut Option<Instant>) -> Result<(), KeySetError> {
        if last.is_some_and(|t| t.elapsed() < self.min_interval) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let result = tokio::time::timeout(self.timeout, self.fetch())
            .await
            .unwrap_or(Err(KeySetError::Timeout));
        let label = if result.is_ok() {
            Fetch::Ok
        } else {
            Fetch::Error
        };
        Metrics::count(&self.metrics.jwks_fetches, label);
        self.last_ok.store(result.is_ok(), Ordering::Release);
        if let Ok(keys) = &result {
            self.metrics.jwks_keys.set(keys.keys.len() as i64);
        }
        let outcome = result.map(|keys| self.current.store(Some(Arc::new(keys))));
        self.generation.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    /// Fetches at start, then every `interval` until shutdown. Failures are logged and
    /// retried at the next tick (every 5 s while no key set was ever loaded).
    pub async fn run(self: Arc<Self>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            match self.refresh().await {
                Ok(()) => tracing::debug!("service-account key set refreshed"),
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot load the API server's service-account keys; tokens are sent to TokenReview until it works (check RBAC for nonResourceURLs /.well-known/openid-configuration and /openid/v1/jwks)"
                ),
            }
            let wait = match self.current() {
                Some(_) => interval,
                None => interval.min(Duration::from_secs(5)),
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn fetch(&self) -> Result<Keys, KeySetError> {
        let doc = self.get(DISCOVERY_PATH, "discovery document").await?;
        let discovery: Discovery =
            serde_json::from_slice(&doc).map_err(|e| KeySetError::Discovery(e.to_string()))?;
        let path = discovery
            .jwks_uri
            .as_deref()
            .and_then(jwks_path)
            .unwrap_or(DEFAULT_JWKS_PATH);
        let set = match self.get(path, "key set").await {
            Err(KeySetError::Fetch { .. }) if path != DEFAULT_JWKS_PATH => {
                self.get(DEFAULT_JWKS_PATH, "key set").await?
            }
            other => other?,
        };
        let keys = jws::parse_jwks(&set, MAX_KEYS)?;
        let issuer = self.issuer_override.clone().unwrap_or(discovery.issuer);
        if issuer.is_empty() {
            return Err(KeySetError::Discovery("empty issuer".into()));
        }
        Ok(Keys { issuer, keys })
    }

    /// One GET through the Kubernetes client, body bounded.
    async fn get(&self, path: &str, what: &'static str) -> Result<Vec<u8>, KeySetError> {
        let fail = |reason: String| KeySetError::Fetch {
            path: if what == "key set" {
                "the key set"
            } else {
                DISCOVERY_PATH
            },
            reason,
        };
        let request = http::Request::get(path)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| fail(e.to_string()))?;
        let stream = self
            .client
            .request_stream(request)
            .await
            .map_err(|e| fail(short_error(&e)))?;
        let mut body = Vec::new();
        Box::pin(stream)
            .take(MAX_DOCUMENT + 1)
            .read_to_end(&mut body)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if body.len() as u64 > MAX_DOCUMENT {
            return Err(KeySetError::TooLarge(what));
        }
        Ok(body)
    }
}

/// The path part of `jwks_uri` (the API server serves the key set itself, so only the path
/// is used and no other host is ever contacted); `None` if it is not a plain path.
fn jwks_path(uri: &str) -> Option<&str> {
    let path = match uri.split_once("://") {
        Some((_, rest)) => &rest[rest.find('/')?..],
        None => uri,
    };
    let plain = path.starts_with('/')
        && path.len() <= 256
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
    (plain && !path.contains("..")).then_some(path)
}

fn short_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("API server answered {} {}", s.code, s.reason),
        kube::Error::HyperError(_) | kube::Error::Service(_) => "API server unreachable".into(),
        _ => "unexpected API error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_only_a_plain_path_from_jwks_uri() {
        assert_eq!(
            jwks_path("https://kubernetes.default.svc.cluster.local/openid/v1/jwks"),
            Some("/openid/v1/jwks")
        );
        assert_eq!(jwks_path("/keys.json"), Some("/keys.json"));
        assert_eq!(jwks_path("https://host"), None);
        assert_eq!(jwks_path("https://h/a?x=1"), None);
        assert_eq!(jwks_path("https://h/../api/v1/secrets"), None);
        assert_eq!(jwks_path("keys"), None);
    }
}
