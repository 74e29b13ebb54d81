//! The client against a fault-injecting server: retries, Retry-After, no retry on caller
//! errors, the circuit breaker, fallbacks, timeouts and the deadline.
//!
//! Timing assertions are lower bounds only: test machines are noisy.

mod fault_server;

use std::time::{Duration, Instant};

use fault_server::{Action, FaultServer};
use inferd_client::{
    breaker::ManualClock, BreakerConfig, BreakerState, CachedResponses, Client, ClientBuilder,
    EmbedRequest, Error, RetryPolicy, SecondaryEndpoint,
};

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(5),
        retry_timeouts: false,
    }
}

fn trips_after(failures: u32) -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: failures,
        failure_ratio: None,
        open_for: Duration::from_secs(600),
        ..BreakerConfig::default()
    }
}

fn builder(server: &FaultServer) -> ClientBuilder {
    Client::builder(server.url())
        .timeout(Duration::from_secs(10))
        .retry(fast_retries(5))
        .breaker(BreakerConfig::disabled())
}

fn hello() -> EmbedRequest {
    EmbedRequest::new("hello")
}

#[tokio::test]
async fn retries_503_429_and_resets_then_succeeds() {
    let server = FaultServer::start([
        Action::status(503, "overloaded"),
        Action::Reset,
        Action::status(429, "rate_limited"),
        Action::Truncate,
        Action::Ok,
    ])
    .await;
    let client = builder(&server).build().unwrap();
    let response = client.embed(&hello()).await.unwrap();
    assert_eq!(response.embeddings, vec![vec![0.6, 0.8]]);
    assert_eq!(response.usage.prompt_tokens, 3);
    assert_eq!(server.hits(), 5);
}

#[tokio::test]
async fn honours_retry_after() {
    let server = FaultServer::start([Action::retry_after(503, "overloaded", 1), Action::Ok]).await;
    let client = builder(&server).build().unwrap();
    let started = Instant::now();
    client.embed(&hello()).await.unwrap();
    assert_eq!(server.hits(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried after {:?}, before Retry-After",
        started.elapsed()
    );
}

#[tokio::test]
async fn never_retries_caller_errors_or_500() {
    for (status, code) in [
        (400, "invalid_json"),
        (401, "unauthorized"),
        (413, "input_too_long"),
        (422, "invalid_input"),
        (500, "internal_error"),
    ] {
        let server = FaultServer::start([Action::status(status, code)]).await;
        let err = builder(&server).build().unwrap().embed(&hello()).await;
        match err {
            Err(Error::Api {
                status: got,
                code: Some(got_code),
                ..
            }) => {
                assert_eq!(got, status);
                assert_eq!(got_code, code);
            }
            other => panic!("{status}: expected an API error, got {other:?}"),
        }
        assert_eq!(server.hits(), 1, "{status} must not be retried");
    }
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let server = FaultServer::start(vec![Action::status(503, "overloaded"); 5]).await;
    let client = builder(&server).retry(fast_retries(3)).build().unwrap();
    let err = client.embed(&hello()).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.code(), Some("overloaded"));
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = Client::builder(format!("http://127.0.0.1:{port}"))
        .retry(fast_retries(2))
        .build()
        .unwrap();
    let err = client.embed(&hello()).await.unwrap_err();
    assert!(matches!(err, Error::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn breaker_opens_after_the_threshold_and_short_circuits() {
    let server = FaultServer::start(vec![Action::status(500, "internal_error"); 10]).await;
    let client = builder(&server)
        .retry(RetryPolicy::none())
        .breaker(trips_after(3))
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            client.embed(&hello()).await.unwrap_err().status(),
            Some(500)
        );
    }
    assert_eq!(client.breaker_state(), BreakerState::Open);
    let err = client.embed(&hello()).await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen), "{err:?}");
    assert_eq!(server.hits(), 3, "an open breaker sends nothing");
}

#[tokio::test]
async fn retries_stop_when_the_breaker_opens() {
    let server = FaultServer::start(vec![Action::status(503, "overloaded"); 10]).await;
    let client = builder(&server)
        .retry(fast_retries(10))
        .breaker(trips_after(2))
        .build()
        .unwrap();
    let err = client.embed(&hello()).await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen), "{err:?}");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn caller_errors_do_not_trip_the_breaker() {
    let server = FaultServer::start(vec![Action::status(422, "invalid_input"); 5]).await;
    let client = builder(&server).breaker(trips_after(2)).build().unwrap();
    for _ in 0..5 {
        assert_eq!(
            client.embed(&hello()).await.unwrap_err().status(),
            Some(422)
        );
    }
    assert_eq!(client.breaker_state(), BreakerState::Closed);
}

#[tokio::test]
async fn half_open_probe_success_closes_the_breaker() {
    let server = FaultServer::start([Action::status(500, "internal_error")]).await;
    let clock = ManualClock::new();
    let client = builder(&server)
        .retry(RetryPolicy::none())
        .breaker(BreakerConfig {
            open_for: Duration::from_secs(30),
            ..trips_after(1)
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    assert!(client.embed(&hello()).await.is_err());
    assert_eq!(client.breaker_state(), BreakerState::Open);
    assert!(matches!(
        client.embed(&hello()).await,
        Err(Error::CircuitOpen)
    ));
    clock.advance(Duration::from_secs(30));
    assert_eq!(client.breaker_state(), BreakerState::HalfOpen);
    client
        .embed(&hello())
        .await
        .expect("the probe goes through");
    assert_eq!(client.breaker_state(), BreakerState::Closed);
    client.embed(&hello()).await.unwrap();
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn half_open_probe_failure_reopens() {
    let server = FaultServer::start(vec![Action::status(503, "overloaded"); 2]).await;
    let clock = ManualClock::new();
    let client = builder(&server)
        .retry(RetryPolicy::none())
        .breaker(BreakerConfig {
            open_for: Duration::from_secs(30),
            ..trips_after(1)
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    assert!(client.embed(&hello()).await.is_err());
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        client.embed(&hello()).await.unwrap_err().status(),
        Some(503)
    );
    assert_eq!(client.breaker_state(), BreakerState::Open);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn secondary_endpoint_answers_while_open() {
    let primary = FaultServer::start([Action::status(500, "internal_error")]).await;
    let secondary = FaultServer::start([]).await;
    let backup = builder(&secondary).build().unwrap();
    let client = builder(&primary)
        .retry(RetryPolicy::none())
        .breaker(trips_after(1))
        .fallback(SecondaryEndpoint::new(backup))
        .build()
        .unwrap();
    assert_eq!(
        client.embed(&hello()).await.unwrap_err().status(),
        Some(500)
    );
    let response = client
        .embed(&hello())
        .await
        .expect("answered by the secondary");
    assert_eq!(response.model, "fake");
    assert_eq!(primary.hits(), 1);
    assert_eq!(secondary.hits(), 1);
}

#[tokio::test]
async fn cached_responses_answer_repeats_while_open() {
    let server = FaultServer::start([Action::Ok, Action::status(503, "overloaded")]).await;
    let client = builder(&server)
        .retry(RetryPolicy::none())
        .breaker(trips_after(1))
        .fallback(CachedResponses::new(100))
        .build()
        .unwrap();
    let fresh = client.embed(&hello()).await.unwrap();
    assert!(
        client.embed(&hello()).await.is_err(),
        "503 opens the breaker"
    );
    assert_eq!(
        client.embed(&hello()).await.unwrap(),
        fresh,
        "from the cache"
    );
    let unseen = client.embed(&EmbedRequest::new("other")).await;
    assert!(matches!(unseen, Err(Error::CircuitOpen)), "{unseen:?}");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn per_attempt_timeout() {
    let server = FaultServer::start([Action::delay(Duration::from_secs(5), Action::Ok)]).await;
    let client = builder(&server)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = client.embed(&hello()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    assert_eq!(server.hits(), 1, "timeouts are not retried by default");
}

#[tokio::test]
async fn timeouts_are_retried_when_asked() {
    let server = FaultServer::start([Action::delay(Duration::from_secs(5), Action::Ok)]).await;
    let client = builder(&server)
        .timeout(Duration::from_millis(200))
        .retry(RetryPolicy {
            retry_timeouts: true,
            ..fast_retries(3)
        })
        .build()
        .unwrap();
    client
        .embed(&hello())
        .await
        .expect("second attempt is fast");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn the_deadline_bounds_attempts_and_backoff() {
    // A slow answer: the attempt is cut at the deadline even though the timeout is longer.
    let server = FaultServer::start([Action::delay(Duration::from_secs(5), Action::Ok)]).await;
    let client = builder(&server)
        .timeout(Duration::from_secs(30))
        .deadline(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client.embed(&hello()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");

    // A Retry-After beyond the deadline: answer now rather than sleep past it.
    let server = FaultServer::start([Action::retry_after(503, "overloaded", 3)]).await;
    let client = builder(&server)
        .deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let err = client.embed(&hello()).await.unwrap_err();
    assert_eq!(err.code(), Some("overloaded"));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn sends_the_api_key_and_the_typed_body() {
    let server = FaultServer::start([]).await;
    let client = builder(&server).api_key("s3cret").build().unwrap();
    client
        .embed(&EmbedRequest::new(["a", "b"]).normalize(false).model("m@2"))
        .await
        .unwrap();
    let request = &server.requests()[0];
    assert!(request.starts_with("POST /infer HTTP/1.1"), "{request}");
    assert!(
        request
            .to_ascii_lowercase()
            .contains("authorization: bearer s3cret"),
        "{request}"
    );
    assert!(
        request.ends_with(r#"{"inputs":["a","b"],"normalize":false,"model":"m@2"}"#),
        "{request}"
    );
}

#[tokio::test]
async fn clones_share_one_breaker() {
    let server = FaultServer::start([Action::status(500, "internal_error")]).await;
    let client = builder(&server)
        .retry(RetryPolicy::none())
        .breaker(trips_after(1))
        .build()
        .unwrap();
    let other = client.clone();
    assert!(client.embed(&hello()).await.is_err());
    assert_eq!(other.breaker_state(), BreakerState::Open);
}

#[test]
fn bad_configuration_is_refused() {
    assert!(matches!(
        Client::builder("inferd:8080").build(),
        Err(Error::Config(_))
    ));
    assert!(Client::builder("http://x")
        .retry(RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        })
        .build()
        .is_err());
}
