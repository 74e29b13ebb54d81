//! Gateway duties in front of the models: per-key rate limits ([`ratelimit`]). API keys live in
//! [`crate::auth`], the response cache in [`crate::cache`].

pub mod ratelimit;
