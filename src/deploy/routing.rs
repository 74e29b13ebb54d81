//! Weighted, sticky canary routing: which version of a model one request goes to.
//!
//! A request's bucket (0..10 000) comes from a stable hash of the model name and the caller's
//! route key (the `x-inferd-route-key` header over HTTP), so the same caller lands on the same
//! version for as long as a canary runs, across processes, restarts and API dialects, and stays
//! on the canary as its weight grows (buckets below the weight go to the canary). Requests without a key get a random bucket.
//! Pure functions only; nothing here knows about HTTP or models.

/// Resolution of canary weights: 0.01 %.
pub const BUCKETS: u32 = 10_000;

/// The request's bucket in `0..BUCKETS`.
pub fn bucket(model: &str, route_key: Option<&str>) -> u32 {
    match route_key {
        Some(key) => (fnv1a(model.as_bytes(), key.as_bytes()) % u64::from(BUCKETS)) as u32,
        None => fastrand::u32(..BUCKETS),
    }
}

/// Whether a request in `bucket` goes to a canary of `weight` (0..=1).
pub fn takes_canary(bucket: u32, weight: f64) -> bool {
    f64::from(bucket) < weight.clamp(0.0, 1.0) * f64::from(BUCKETS)
}

/// FNV-1a over `model`, a separator and `key`: stable across builds and machines, unlike std's
/// randomly seeded hasher.
fn fnv1a(model: &[u8], key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in model.iter().chain(&[0xff]).chain(key) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short keys; fold the high half in.
    hash ^ (hash >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_bucket() {
        for key in ["alice", "bob", "tenant-42"] {
            assert_eq!(bucket("m", Some(key)), bucket("m", Some(key)));
        }
        assert!(bucket("m", Some("alice")) < BUCKETS);
    }

    #[test]
    fn keys_spread_roughly_evenly() {
        let n = 20_000;
        let canary = (0..n)
            .filter(|i| takes_canary(bucket("m", Some(&format!("user-{i}"))), 0.25))
            .count();
        let share = canary as f64 / n as f64;
        assert!((0.22..0.28).contains(&share), "{share}");
    }

    #[test]
    fn weights_at_the_edges() {
        assert!(!takes_canary(0, 0.0));
        assert!(takes_canary(BUCKETS - 1, 1.0));
        assert!(takes_canary(99, 0.01));
        assert!(!takes_canary(100, 0.01));
    }
}
