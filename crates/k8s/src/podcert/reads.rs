//! Reads of API objects shared per key: a caller asks for a value read no earlier than an
//! instant of its choosing (a while ago to reuse a recent read, or its own start when it
//! must not act on an old one). At most one read per key is in flight; every caller that
//! can use it joins it, so a burst of requests naming one object costs one read. Errors
//! are not kept; values are kept for `ttl`, after which their keys may be dropped.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::time::Instant;

/// A value and when the read that produced it started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen<V> {
    pub value: V,
    pub started: Instant,
}

type Flight<V, E> = Shared<BoxFuture<'static, Result<V, E>>>;

struct InFlight<V, E> {
    id: u64,
    started: Instant,
    read: Flight<V, E>,
}

struct Entry<V, E> {
    seen: Option<Seen<V>>,
    flight: Option<InFlight<V, E>>,
}

struct Inner<K, V, E> {
    entries: HashMap<K, Entry<V, E>>,
    next_id: u64,
}

/// What a caller does with the read it found.
enum Step<V, E> {
    Done(Seen<V>),
    /// Use this read's result.
    Join(u64, Instant, Flight<V, E>),
    /// An older read is in flight: wait for it, then look again.
    After(u64, Instant, Flight<V, E>),
}

/// The shared reads; bounded to `capacity` keys (reads in flight are never dropped).
pub struct Reads<K, V, E> {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner<K, V, E>>,
}

impl<K, V, E> Reads<K, V, E>
where
    K: Clone + Eq + Hash,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                next_id: 0,
            }),
        }
    }

    /// A value from a read that started at `since` or later: the one kept, the one in
    /// flight, or a new one made with `read` (after the older read in flight, if any).
    pub async fn since<F>(&self, key: &K, since: Instant, read: F) -> Result<Seen<V>, E>
    where
        F: Fn() -> BoxFuture<'static, Result<V, E>>,
    {
        loop {
            let (join, id, started, flight) = match self.step(key, since, &read) {
                Step::Done(seen) => return Ok(seen),
                Step::Join(id, started, f) => (true, id, started, f),
                Step::After(id, started, f) => (false, id, started, f),
            };
            let result = flight.await;
            self.settle(key, id, started, &result);
            if join {
                return result.map(|value| Seen { value, started });
            }
        }
    }

    fn step<F>(&self, key: &K, since: Instant, read: &F) -> Step<V, E>
    where
        F: Fn() -> BoxFuture<'static, Result<V, E>>,
    {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.entries.contains_key(key) {
            self.make_room(&mut inner.entries);
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let entry = inner.entries.entry(key.clone()).or_insert(Entry {
            seen: None,
            flight: None,
        });
        if let Some(seen) = entry.seen.as_ref().filter(|s| s.started >= since) {
            return Step::Done(seen.clone());
        }
        match &entry.flight {
            Some(f) if f.started >= since => Step::Join(f.id, f.started, f.read.clone()),
            Some(f) => Step::After(f.id, f.started, f.read.clone()),
            None => {
                let started = Instant::now();
                let flight = read().shared();
                entry.flight = Some(InFlight {
                    id,
                    started,
                    read: flight.clone(),
                });
                Step::Join(id, started, flight)
            }
        }
    }

    /// Ends read `id`: keeps its value unless a newer one is kept.
    fn settle(&self, key: &K, id: u64, started: Instant, result: &Result<V, E>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = inner.entries.get_mut(key) else {
            return;
        };
        if entry.flight.as_ref().is_some_and(|f| f.id == id) {
            entry.flight = None;
        }
        if let Ok(value) = result
            && entry.seen.as_ref().is_none_or(|s| s.started < started)
        {
            entry.seen = Some(Seen {
                value: value.clone(),
                started,
            });
        }
    }

    /// Before a new key is added at capacity: drops the entries past their `ttl`, then,
    /// if that is not enough, any entry without a read in flight.
    fn make_room(&self, entries: &mut HashMap<K, Entry<V, E>>) {
        if entries.len() < self.capacity {
            return;
        }
        let ttl = self.ttl;
        entries.retain(|_, e| {
            e.flight.is_some() || e.seen.as_ref().is_some_and(|s| s.started.elapsed() < ttl)
        });
        let excess = (entries.len() + 1).saturating_sub(self.capacity);
        let idle: Vec<K> = entries
            .iter()
            .filter(|(_, e)| e.flight.is_none())
            .map(|(k, _)| k.clone())
            .take(excess)
            .collect();
        for k in idle {
            entries.remove(&k);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    type Counted = Reads<&'static str, u32, &'static str>;

    /// A read that takes 10 ms and answers how many reads were made so far.
    fn counter(
        n: &Arc<AtomicU32>,
    ) -> impl Fn() -> BoxFuture<'static, Result<u32, &'static str>> + use<> {
        let n = n.clone();
        move || {
            let n = n.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(n.fetch_add(1, Ordering::SeqCst) + 1)
            }
            .boxed()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_callers_shares_one_read() {
        let reads = Arc::new(Counted::new(Duration::from_secs(10), 16));
        let n = Arc::new(AtomicU32::new(0));
        let since = Instant::now();
        let calls = (0..1000).map(|_| {
            let reads = reads.clone();
            let read = counter(&n);
            async move { reads.since(&"sa", since, read).await.unwrap().value }
        });
        let got = futures::future::join_all(calls).await;
        assert!(got.iter().all(|v| *v == 1));
        assert_eq!(n.load(Ordering::SeqCst), 1);
        // A caller content with a read of the last 10 s reuses it.
        let recent = Instant::now() - Duration::from_secs(10);
        assert_eq!(
            reads.since(&"sa", recent, counter(&n)).await.unwrap().value,
            1
        );
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_never_gets_a_read_that_started_before_it_asked() {
        let reads = Arc::new(Counted::new(Duration::from_secs(10), 16));
        let n = Arc::new(AtomicU32::new(0));
        let first = {
            let (reads, read) = (reads.clone(), counter(&n));
            tokio::spawn(async move { reads.since(&"node", Instant::now(), read).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The first read is in flight; a later caller waits for a read of its own.
        let later = reads.since(&"node", Instant::now(), counter(&n)).await;
        assert_eq!(first.await.unwrap().unwrap().value, 1);
        assert_eq!(later.unwrap().value, 2);
        // A kept value new enough is used without reading.
        let since = Instant::now() - Duration::from_millis(20);
        assert_eq!(
            reads
                .since(&"node", since, counter(&n))
                .await
                .unwrap()
                .value,
            2
        );
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_not_kept() {
        let reads = Counted::new(Duration::from_secs(10), 16);
        let fail = || async { Err("HTTP 503") }.boxed();
        let long_ago = Instant::now() - Duration::from_secs(5);
        assert_eq!(reads.since(&"sa", long_ago, fail).await, Err("HTTP 503"));
        let n = Arc::new(AtomicU32::new(0));
        assert_eq!(
            reads
                .since(&"sa", Instant::now(), counter(&n))
                .await
                .unwrap()
                .value,
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_bounded() {
        let reads = Counted::new(Duration::from_secs(10), 4);
        let ok = || async { Ok(7) }.boxed();
        for key in ["a", "b", "c", "d", "e", "f"] {
            reads.since(&key, Instant::now(), ok).await.unwrap();
        }
        assert_eq!(reads.len(), 4);
    }
}
