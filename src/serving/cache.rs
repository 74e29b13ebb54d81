//! The LRU response cache: embeddings already computed are answered without touching the queue.
//!
//! Keyed by (model `name@version`, `normalize`, `truncate`, text), so a new model version never
//! serves an old vector and option variants never mix. It is consulted per input inside
//! [`ModelHandle::embed`](super::ModelHandle::embed), so every caller that embeds (every
//! dialect, `/recommend`, `/items`, shadow copies) benefits: a request whose inputs all hit is
//! answered at once; otherwise only the misses go to the batcher, and their vectors are
//! inserted when they come back. `--cache-capacity` bounds the entries (0: off).
//!
//! `usage.prompt_tokens` counts the tokens computed for the request: hits add none.
//!
//! Metrics: `inferd_cache_hits_total`, `inferd_cache_misses_total` (per input),
//! `inferd_cache_entries`.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    future::Future,
    sync::{Arc, Mutex},
};

use super::{metrics, EmbedError, Embedded, ModelRef};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    model: Arc<ModelRef>,
    normalize: bool,
    truncate: bool,
    text: String,
}

/// A bounded least-recently-used map; `get` and `insert` are O(log n).
struct Lru<K, V> {
    capacity: usize,
    map: HashMap<Arc<K>, (V, u64)>,
    /// Last-use tick → key; the first entry is the least recently used.
    order: BTreeMap<u64, Arc<K>>,
    tick: u64,
}

impl<K: std::hash::Hash + Eq, V: Clone> Lru<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn get(&mut self, key: &K) -> Option<V> {
        let tick = self.next_tick();
        let (value, used) = self.map.get_mut(key)?;
        let owned = self.order.remove(&*used).expect("order tracks every entry");
        *used = tick;
        self.order.insert(tick, owned);
        Some(value.clone())
    }

    fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        let tick = self.next_tick();
        if let Some((old, used)) = self.map.get_mut(&key) {
            *old = value;
            let owned = self.order.remove(&*used).expect("order tracks every entry");
            *used = tick;
            self.order.insert(tick, owned);
            return;
        }
        if self.map.len() >= self.capacity {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.map.remove(&oldest);
            }
        }
        let key = Arc::new(key);
        self.order.insert(tick, Arc::clone(&key));
        self.map.insert(key, (value, tick));
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The shared response cache; one per process, shared by every model handle.
pub struct EmbeddingCache {
    lru: Mutex<Lru<Key, Arc<[f32]>>>,
}

impl fmt::Debug for EmbeddingCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lru = self.lru.lock().expect("cache lock");
        f.debug_struct("EmbeddingCache")
            .field("capacity", &lru.capacity)
            .field("entries", &lru.len())
            .finish()
    }
}

impl EmbeddingCache {
    /// A cache of `capacity` embeddings, or `None` when `capacity` is 0 (off).
    pub fn new(capacity: usize) -> Option<Arc<Self>> {
        if capacity == 0 {
            return None;
        }
        metrics::cache_registered();
        Some(Arc::new(Self {
            lru: Mutex::new(Lru::new(capacity)),
        }))
    }

    pub fn len(&self) -> usize {
        self.lru.lock().expect("cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answers the inputs found in the cache and sends only the misses to `compute` (the
    /// uncached embed path of version `model`), inserting what it returns.
    pub async fn embed_through<F, Fut>(
        &self,
        model: &ModelRef,
        texts: Vec<String>,
        truncate: bool,
        normalize: bool,
        compute: F,
    ) -> Result<Embedded, EmbedError>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<Embedded, EmbedError>>,
    {
        let model = Arc::new(model.clone());
        let key = |text: String| Key {
            model: Arc::clone(&model),
            normalize,
            truncate,
            text,
        };
        let mut found: Vec<Option<Arc<[f32]>>> = Vec::with_capacity(texts.len());
        let mut missed: Vec<(usize, String)> = Vec::new();
        {
            let mut lru = self.lru.lock().expect("cache lock");
            for (index, text) in texts.into_iter().enumerate() {
                let k = key(text);
                let hit = lru.get(&k);
                if hit.is_none() {
                    missed.push((index, k.text));
                }
                found.push(hit);
            }
        }
        metrics::cache_lookups(found.len() - missed.len(), missed.len());
        let mut prompt_tokens = 0;
        if !missed.is_empty() {
            let inputs = missed.iter().map(|(_, text)| text.clone()).collect();
            let computed = compute(inputs).await.map_err(|err| match err {
                // The uncached path numbers inputs among the misses; report the caller's index.
                EmbedError::InputTooLong {
                    index,
                    tokens,
                    limit,
                } => EmbedError::InputTooLong {
                    index: missed.get(index).map_or(index, |(i, _)| *i),
                    tokens,
                    limit,
                },
                EmbedError::InputFlagged { index, reason, why } => EmbedError::InputFlagged {
                    index: missed.get(index).map_or(index, |(i, _)| *i),
                    reason,
                    why,
                },
                other => other,
            })?;
            prompt_tokens = computed.prompt_tokens;
            let mut lru = self.lru.lock().expect("cache lock");
            for ((index, text), vector) in missed.into_iter().zip(computed.vectors) {
                let vector: Arc<[f32]> = vector.into();
                lru.insert(key(text), Arc::clone(&vector));
                found[index] = Some(vector);
            }
            metrics::cache_entries(lru.len());
        }
        let vectors = found
            .into_iter()
            .map(|v| v.map(|v| v.to_vec()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| EmbedError::Internal("the model returned too few vectors".into()))?;
        Ok(Embedded {
            vectors,
            prompt_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.insert("a", 1);
        lru.insert("b", 2);
        assert_eq!(lru.get(&"a"), Some(1)); // b is now the oldest
        lru.insert("c", 3);
        assert_eq!(lru.get(&"b"), None);
        assert_eq!(lru.get(&"a"), Some(1));
        assert_eq!(lru.get(&"c"), Some(3));
        lru.insert("a", 10); // update in place, no eviction
        assert_eq!(lru.len(), 2);
        assert_eq!(lru.get(&"a"), Some(10));
        assert_eq!(lru.order.len(), lru.map.len());
    }

    fn fake_model(calls: &AtomicUsize, texts: Vec<String>) -> Result<Embedded, EmbedError> {
        calls.fetch_add(texts.len(), Ordering::SeqCst);
        if let Some(index) = texts.iter().position(|t| t == "too long") {
            return Err(EmbedError::InputTooLong {
                index,
                tokens: 9,
                limit: 1,
            });
        }
        Ok(Embedded {
            prompt_tokens: texts.len(),
            vectors: texts.iter().map(|t| vec![t.len() as f32]).collect(),
        })
    }

    #[tokio::test]
    async fn only_misses_are_computed_and_order_is_kept() {
        let cache = EmbeddingCache::new(10).unwrap();
        let calls = AtomicUsize::new(0);
        let run = |texts: &[&str], normalize: bool| {
            let texts = texts.iter().map(|t| t.to_string()).collect();
            let calls = &calls;
            let cache = &cache;
            async move {
                cache
                    .embed_through(
                        &ModelRef::parse("m@1"),
                        texts,
                        true,
                        normalize,
                        |t| async move { fake_model(calls, t) },
                    )
                    .await
            }
        };
        let first = run(&["a", "bb"], true).await.unwrap();
        assert_eq!(first.vectors, vec![vec![1.0], vec![2.0]]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let second = run(&["ccc", "bb", "a"], true).await.unwrap();
        assert_eq!(second.vectors, vec![vec![3.0], vec![2.0], vec![1.0]]);
        assert_eq!(calls.load(Ordering::SeqCst), 3, "only ccc computed");
        assert_eq!(second.prompt_tokens, 1);
        run(&["a"], false).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4, "other options miss");
        let err = run(&["a", "too long"], true).await.unwrap_err();
        assert!(
            matches!(err, EmbedError::InputTooLong { index: 1, .. }),
            "{err:?}"
        );
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn zero_capacity_is_off() {
        assert!(EmbeddingCache::new(0).is_none());
    }
}
