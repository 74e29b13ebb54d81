//! What one connection is doing, for its watchdog: when bytes last moved, whether a request is
//! in flight, and when the head of the next request started to arrive.
//!
//! The socket is wrapped ([`Watched`]) so every read and write stamps the clock; the service
//! marks a request's start and end ([`Activity::begin`]). [`watchdog`] resolves when the
//! connection should be dropped:
//! - a request head started arriving more than `--header-read-timeout` ago and is not complete
//!   (slowloris);
//! - no request in flight, no head arriving, and no bytes moved for `--idle-timeout` (an idle
//!   keep-alive, a connection that never sends anything, a client that stopped reading).
//!
//! The timeouts are looked up afresh at every check ([`Timeouts`]): the listener shortens them
//! while it is full, so idle connections make room for new ones.
//!
//! While a request is in flight the watchdog stays out of it: `--body-read-timeout` bounds its
//! body and `--request-timeout` its work.

use std::{
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

/// Milliseconds since the connection was accepted; `NONE` for "no head arriving".
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last: AtomicU64,
    head_since: AtomicU64,
    in_flight: AtomicUsize,
}

const NONE: u64 = u64::MAX;

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn on_read(&self) {
        let now = self.now();
        self.last.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            // The first bytes of a new request's head: its clock starts now (once).
            let _ =
                self.head_since
                    .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }

    /// A request's head is complete and its handler starts; the guard marks its end.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        InFlight(Arc::clone(self))
    }

    /// When (ms since accept) the connection becomes stale, or `None` while a request is in
    /// flight.
    fn deadline(&self, header: Duration, idle: Duration) -> Option<u64> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(match self.head_since.load(Ordering::Acquire) {
            NONE => self.last.load(Ordering::Relaxed) + idle.as_millis() as u64,
            since => since + header.as_millis() as u64,
        })
    }
}

/// One request in flight; its end counts as activity, so the idle clock restarts when the
/// handler finishes (however long it ran), not when its body was last read.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.on_write();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The timeouts a connection is held to at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A started request head must be complete within this.
    pub header: Duration,
    /// No request in flight and no bytes moving for this long: stale.
    pub idle: Duration,
}

/// Resolves once the connection is stale (see the module doc) by the timeouts `now` gives at
/// each check; checks again at each deadline and at least every `recheck`: a head that starts
/// arriving during a long idle wait (the bytes came after the watchdog first looked) is held to
/// its own deadline, not the idle one, and shorter timeouts take effect within `recheck`.
pub async fn watchdog(activity: &Activity, recheck: Duration, now: impl Fn() -> Timeouts) {
    loop {
        let Timeouts { header, idle } = now();
        let wait = match activity.deadline(header, idle) {
            None => recheck,
            Some(deadline) => match deadline.checked_sub(activity.now()) {
                None | Some(0) => return,
                Some(ms) => Duration::from_millis(ms).min(recheck),
            },
        };
        tokio::time::sleep(wait).await;
    }
}

/// A socket whose reads and writes stamp its [`Activity`].
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    fn fixed(header: Duration, idle: Duration) -> impl Fn() -> Timeouts {
        move || Timeouts { header, idle }
    }

    fn head_since(a: &Activity) -> u64 {
        a.head_since.load(Ordering::Relaxed)
    }

    fn last(a: &Activity) -> u64 {
        a.last.load(Ordering::Relaxed)
    }

    /// The watchdog first sees a silent connection (idle deadline, a minute away); a head that
    /// starts arriving then must still be cut at about its header timeout, not after the minute.
    #[tokio::test]
    async fn a_head_arriving_during_an_idle_wait_gets_the_header_deadline() {
        let a = Activity::new();
        let header = Duration::from_millis(50);
        let watch = {
            let a = Arc::clone(&a);
            tokio::spawn(async move { watchdog(&a, header, fixed(header, IDLE)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        a.on_read();
        let fired = tokio::time::timeout(Duration::from_secs(20), watch).await;
        assert!(fired.is_ok(), "the watchdog slept through the idle timeout");
    }

    /// A listener that fills up shortens the idle timeout; a watchdog already waiting out the
    /// long one must apply the short one at its next re-check, not after the long wait.
    #[tokio::test]
    async fn shorter_timeouts_apply_at_the_next_recheck() {
        use std::sync::atomic::AtomicBool;
        let a = Activity::new();
        let full = Arc::new(AtomicBool::new(false));
        let watch = {
            let (a, full) = (Arc::clone(&a), Arc::clone(&full));
            tokio::spawn(async move {
                let now = || Timeouts {
                    header: HEADER,
                    idle: match full.load(Ordering::Relaxed) {
                        true => Duration::from_millis(1),
                        false => IDLE,
                    },
                };
                watchdog(&a, Duration::from_millis(50), now).await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        full.store(true, Ordering::Relaxed);
        let fired = tokio::time::timeout(Duration::from_secs(20), watch).await;
        assert!(
            fired.is_ok(),
            "the shorter idle timeout waited for the long one"
        );
    }

    #[test]
    fn a_silent_connection_goes_stale_after_the_idle_timeout() {
        let a = Activity::new();
        assert_eq!(a.deadline(HEADER, IDLE), Some(60_000));
        a.on_write();
        assert_eq!(a.deadline(HEADER, IDLE), Some(last(&a) + 60_000));
    }

    #[test]
    fn a_started_head_must_finish_within_the_header_timeout() {
        let a = Activity::new();
        a.on_read();
        let since = head_since(&a);
        assert_ne!(since, NONE);
        // More bytes of the same head do not restart its clock.
        a.on_read();
        assert_eq!(head_since(&a), since);
        assert_eq!(a.deadline(HEADER, IDLE), Some(since + 10_000));
    }

    #[test]
    fn a_request_in_flight_is_never_stale_and_its_end_restarts_the_idle_clock() {
        let a = Activity::new();
        a.on_read();
        let request = a.begin();
        assert_eq!(a.deadline(HEADER, IDLE), None);
        // Body bytes read while in flight do not start a head clock.
        a.on_read();
        assert_eq!(head_since(&a), NONE);
        drop(request);
        assert_eq!(a.deadline(HEADER, IDLE), Some(last(&a) + 60_000));
    }

    #[tokio::test]
    async fn the_watchdog_fires_once_the_deadline_has_passed() {
        let a = Activity::new();
        let short = Duration::from_millis(1);
        tokio::time::timeout(
            Duration::from_secs(30),
            watchdog(&a, short, fixed(short, short)),
        )
        .await
        .expect("an idle connection with a 1 ms idle timeout is stale");
    }
}
