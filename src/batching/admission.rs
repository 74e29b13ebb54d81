//! Admission control: the bounded queue's capacity.
//!
//! A request takes a [`Permit`] before any work is done for it and holds it until the worker
//! hands its result back (or it is dropped): the permits count work, not open connections, so a
//! slot is free before the client has even read its answer. When all permits are taken the request is refused at once with 503 `overloaded`
//! and `Retry-After` — it never waits, so latency cannot grow without bound and the accept loop is
//! never blocked. The number of permits out is the `inferd_queue_depth` gauge.

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
        let admitted = self
            .taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.labels.rejected("overloaded", 1);
            return None;
        }
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
}
