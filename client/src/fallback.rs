//! What answers while the breaker is open.
//!
//! A [`Fallback`] is consulted only when the breaker refuses a call (open, or half-open with
//! its probe slots taken); it also sees every good answer from the primary through
//! [`Fallback::observe`], which is how [`CachedResponses`] learns. Two are provided:
//! [`SecondaryEndpoint`] (another inferd deployment, e.g. another region or a CPU pool, behind
//! its own [`Client`] with its own breaker) and [`CachedResponses`] (the last good answer to
//! the same request, for callers that prefer a slightly stale vector to none).

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::Mutex,
};

use crate::{Client, EmbedRequest, EmbedResponse, Error};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Fallback: Send + Sync {
    /// Answers `request` instead of the primary.
    fn embed<'a>(
        &'a self,
        request: &'a EmbedRequest,
    ) -> BoxFuture<'a, Result<EmbedResponse, Error>>;

    /// Sees every good answer of the primary (default: ignores it).
    fn observe(&self, _request: &EmbedRequest, _response: &EmbedResponse) {}
}

/// Sends the call to another endpoint.
pub struct SecondaryEndpoint {
    client: Client,
}

impl SecondaryEndpoint {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl Fallback for SecondaryEndpoint {
    fn embed<'a>(
        &'a self,
        request: &'a EmbedRequest,
    ) -> BoxFuture<'a, Result<EmbedResponse, Error>> {
        Box::pin(self.client.embed(request))
    }
}

/// Remembers the last good answer to each of the most recent `capacity` distinct requests and
/// replays it; a request it has not seen gets [`Error::CircuitOpen`].
pub struct CachedResponses {
    capacity: usize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<EmbedRequest, EmbedResponse>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<EmbedRequest>,
}

impl CachedResponses {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(Entries::default()),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Fallback for CachedResponses {
    fn embed<'a>(
        &'a self,
        request: &'a EmbedRequest,
    ) -> BoxFuture<'a, Result<EmbedResponse, Error>> {
        let hit = self.entries.lock().unwrap().map.get(request).cloned();
        Box::pin(async move { hit.ok_or(Error::CircuitOpen) })
    }

    fn observe(&self, request: &EmbedRequest, response: &EmbedResponse) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap();
        if entries
            .map
            .insert(request.clone(), response.clone())
            .is_none()
        {
            entries.order.push_back(request.clone());
            while entries.order.len() > self.capacity {
                if let Some(old) = entries.order.pop_front() {
                    entries.map.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Usage;

    fn response(tag: f32) -> EmbedResponse {
        EmbedResponse {
            model: "m".into(),
            version: "v".into(),
            dimensions: 1,
            embeddings: vec![vec![tag]],
            usage: Usage { prompt_tokens: 1 },
        }
    }

    #[tokio::test]
    async fn cache_replays_the_last_good_answer_and_evicts_the_oldest() {
        let cache = CachedResponses::new(2);
        let (a, b, c) = (
            EmbedRequest::new("a"),
            EmbedRequest::new("b"),
            EmbedRequest::new("c"),
        );
        assert!(matches!(cache.embed(&a).await, Err(Error::CircuitOpen)));
        cache.observe(&a, &response(1.0));
        cache.observe(&a, &response(2.0));
        assert_eq!(cache.embed(&a).await.unwrap(), response(2.0));
        cache.observe(&b, &response(3.0));
        cache.observe(&c, &response(4.0));
        assert_eq!(cache.len(), 2);
        assert!(cache.embed(&a).await.is_err(), "oldest evicted");
        assert_eq!(cache.embed(&c).await.unwrap(), response(4.0));
        // The same text with other options is another request.
        assert!(cache.embed(&c.clone().normalize(false)).await.is_err());
    }
}
