//! Admission control: the bounded queue's capacity.
//!
//! A request takes a [`Permit`] before any work is done for it and holds it until the worker
//! hands its result back (or it is dropped): the permits count work, not open connections, so a
//! slot is free before the client has even read its answer. When all permits are taken the request is refused at once with 503 `overloaded`
//! and `Retry-After` — it never waits, so latency cannot grow without bound and the accept loop is
//! never blocked. The number of permits out is the `inferd_queue_depth` gauge.
//!
//! Background work (batch jobs) takes its permits from the same queue but only from the lower
//! half ([`Admission::try_admit_background`]): it can never fill the queue against interactive
//! callers, and backs off when the service is busy.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use super::ModelLabels;

pub struct Admission {
    capacity: usize,
    taken: AtomicUsize,
    labels: ModelLabels,
}

/// Proof that a request was admitted; releases its slot when dropped.
pub struct Permit {
    admission: Arc<Admission>,
}

impl Admission {
    pub fn new(capacity: usize, labels: ModelLabels) -> Arc<Self> {
        labels.register(capacity);
        Arc::new(Self {
            capacity,
            taken: AtomicUsize::new(0),
            labels,
        })
    }

    /// Takes a slot, or `None` when the queue is full.
    pub fn try_admit(self: &Arc<Self>) -> Option<Permit> {
        let permit = self.admit_below(self.capacity);
        if permit.is_none() {
            self.labels.rejected("overloaded", 1);
        }
        permit
    }

    /// Takes a slot for background work, or `None` unless the queue is less than half full
    /// (at least one slot is always open to background work, whatever the capacity). Not a
    /// rejection: the background caller waits and retries.
    pub fn try_admit_background(self: &Arc<Self>) -> Option<Permit> {
        self.admit_below(self.capacity.div_ceil(2))
    }

    fn admit_below(self: &Arc<Self>, limit: usize) -> Option<Permit> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        self.publish();
        Some(Permit {
            admission: Arc::clone(self),
        })
    }

    pub fn depth(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }

    fn publish(&self) {
        self.labels.queue_depth(self.depth());
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.taken.fetch_sub(1, Ordering::AcqRel);
        self.admission.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_capacity_and_frees_on_drop() {
        let labels = ModelLabels {
            model: "m".into(),
            version: "v".into(),
        };
        let adm = Admission::new(2, labels);
        let a = adm.try_admit().unwrap();
        let _b = adm.try_admit().unwrap();
        assert!(adm.try_admit().is_none());
        assert_eq!(adm.depth(), 2);
        drop(a);
        assert_eq!(adm.depth(), 1);
        assert!(adm.try_admit().is_some());
    }

    #[test]
    fn background_work_takes_only_the_lower_half() {
        let labels = ModelLabels {
            model: "m".into(),
            version: "v".into(),
        };
        let adm = Admission::new(4, labels);
        let bg: Vec<_> = (0..2)
            .map(|_| adm.try_admit_background().unwrap())
            .collect();
        assert!(adm.try_admit_background().is_none(), "half of 4 is taken");
        let _a = adm.try_admit().unwrap();
        let _b = adm.try_admit().unwrap();
        assert!(adm.try_admit().is_none());
        drop(bg);
        assert!(
            adm.try_admit_background().is_none(),
            "interactive holds half already"
        );
        // A queue of one still lets background work in when it is empty.
        let one = Admission::new(
            1,
            ModelLabels {
                model: "m".into(),
                version: "v".into(),
            },
        );
        assert!(one.try_admit_background().is_some());
    }
}
