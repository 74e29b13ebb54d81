//! Outgoing webhooks, signed per Standard Webhooks.
//!
//! Each delivery is one `POST` of the event's JSON with three headers: `webhook-id` (the event
//! id: the same on every retry, so receivers de-duplicate), `webhook-timestamp` (seconds, of
//! this attempt) and `webhook-signature`, `v1,` followed by the base64 HMAC-SHA256 of
//! `{id}.{timestamp}.{body}` keyed with the secret's base64-decoded bytes (the part after
//! `whsec_`). A 2xx answer is a delivery; anything else, or no answer within `--webhook-timeout`,
//! is retried with exponential backoff (1 s, 2 s, 4 s, … capped at 5 min, ±25% jitter) until
//! `--webhook-max-attempts` attempts were made. At most `--webhook-concurrency` deliveries run at
//! once, on their own tasks, so a slow or failing receiver never holds up anything else.

use std::{path::Path, time::Duration};

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{metrics, types::Event};

/// Webhook settings (`--webhook-*`).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub urls: Vec<String>,
    pub secret: Secret,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub concurrency: usize,
}

/// A Standard Webhooks signing secret (`whsec_` + base64).
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Parses `whsec_<base64>` (the prefix is optional, as Standard Webhooks libraries accept).
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text.trim();
        let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
        let key = STANDARD
            .decode(encoded)
            .map_err(|e| format!("a webhook secret is `whsec_` followed by base64: {e}"))?;
        if key.len() < 16 {
            return Err("a webhook secret must hold at least 16 bytes of key".into());
        }
        Ok(Self(key))
    }

    /// Reads `--webhook-secret-file`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("reading --webhook-secret-file {}: {e}", path.display())
        })?;
        Self::parse(&text)
            .map_err(|e| anyhow::anyhow!("--webhook-secret-file {}: {e}", path.display()))
    }

    /// `webhook-signature` for message `id` sent at `timestamp` with `body`.
    pub fn sign(&self, id: &str, timestamp: u64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// Sends events to webhook URLs.
pub struct Sender {
    config: WebhookConfig,
    client: reqwest::Client,
}

impl Sender {
    pub fn new(config: WebhookConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("inferd/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { config, client })
    }

    pub fn urls(&self) -> &[String] {
        &self.config.urls
    }

    pub fn concurrency(&self) -> usize {
        self.config.concurrency.max(1)
    }

    /// Delivers `event` to `url`, retrying within the budget; whether it was delivered.
    pub async fn deliver(&self, url: &str, event: &Event) -> bool {
        let body = serde_json::to_string(event).expect("events serialise");
        for attempt in 1..=self.config.max_attempts.max(1) {
            match self.attempt(url, &event.id, &body).await {
                Ok(()) => {
                    metrics::webhook_attempt(true);
                    return true;
                }
                Err(why) => {
                    metrics::webhook_attempt(false);
                    tracing::warn!(url, event = %event.id, attempt, %why, "webhook delivery failed");
                }
            }
            if attempt < self.config.max_attempts {
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        false
    }

    async fn attempt(&self, url: &str, id: &str, body: &str) -> Result<(), String> {
        let timestamp = super::types::now();
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                self.config.secret.sign(id, timestamp, body),
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(format!("the receiver answered {status}")),
        }
    }
}

/// The wait after failed attempt `n` (1-based): 2ⁿ⁻¹ s, at most 5 min, ±25%.
fn backoff(n: u32) -> Duration {
    let base = Duration::from_secs(1 << n.saturating_sub(1).min(9)).min(Duration::from_secs(300));
    base.mul_f64(0.75 + fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The Standard Webhooks specification's example: secret, id, timestamp, payload and the
        // signature its reference libraries compute.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(Secret::parse("whsec_not base64!").is_err());
        assert!(Secret::parse("whsec_c2hvcnQ=").is_err(), "too short a key");
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert!((750..=1250).contains(&backoff(1).as_millis()));
        assert!((3000..=5000).contains(&backoff(3).as_millis()));
        assert!(backoff(30) <= Duration::from_secs(375));
    }
}
