//! Shadow traffic: a sampled share of live requests also sent to a candidate version, off the
//! critical path.
//!
//! The caller's response never waits for the candidate. After the live answer is ready, a copy
//! of the request (same texts, `prompt_name`, truncation, normalisation and `dimensions`, so both
//! versions embed the same thing) and the live vectors are offered to a bounded channel with
//! `try_send`: when the channel
//! is full, or the candidate's own queue is more than half full (it may be serving canary
//! traffic), the shadow copy is dropped and counted — shadow work is always the first to go under
//! load. One task per shadowed deployment runs the copies one at a time through the candidate's
//! normal queue and feeds the agreement window ([`super::agreement`]).
//!
//! Rerankers and classifiers are shadowed the same way ([`ShadowWork::Classify`]): each distinct
//! input (a text, or a query and text pair) keeps both versions' logits, and their agreement is
//! the rank correlation of the scores ([`agreement::score_agreement`]).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::mpsc;

use super::agreement::{self, Agreement};
use super::metrics as m;
use crate::{
    model::heads::ModelKind,
    serving::{ClassifyInput, ClassifyRequest, Deadline, EmbedRequest, ModelHandle},
};

/// One live request, copied for the candidate.
pub struct ShadowJob {
    pub candidate: Arc<ModelHandle>,
    /// The live request as the caller made it; its deadline is replaced when it runs.
    pub work: ShadowWork,
    /// The live version's answer to it: vectors, or one row of logits per input.
    pub primary: Vec<Vec<f32>>,
}

/// The copied request: what the live version ran, to run again on the candidate.
pub enum ShadowWork {
    /// Texts before any prompt, with their `prompt_name`, truncation, normalisation and
    /// `dimensions`.
    Embed(EmbedRequest),
    /// Texts and pairs for a reranker's or classifier's head.
    Classify(ClassifyRequest),
}

impl ShadowWork {
    /// One key per input, in order: the text, or the pair joined by a NUL.
    fn keys(&self) -> Vec<String> {
        match self {
            Self::Embed(req) => req.texts.clone(),
            Self::Classify(req) => req
                .inputs
                .iter()
                .map(|input| match input {
                    ClassifyInput::Single(text) => text.clone(),
                    ClassifyInput::Pair(query, text) => format!("{query}\0{text}"),
                })
                .collect(),
        }
    }

    /// Runs the copy on `candidate` within `timeout`: its vectors or logits.
    async fn run(self, candidate: &ModelHandle, timeout: Duration) -> Option<Vec<Vec<f32>>> {
        let deadline = Deadline::after(timeout);
        match self {
            Self::Embed(req) => candidate
                .embed(EmbedRequest { deadline, ..req })
                .await
                .ok()
                .map(|e| e.vectors),
            Self::Classify(req) => candidate
                .classify(ClassifyRequest { deadline, ..req })
                .await
                .ok()
                .map(|c| c.logits),
        }
    }
}

/// Distinct texts with both versions' vectors, oldest first.
#[derive(Default)]
struct Window {
    texts: VecDeque<String>,
    old: VecDeque<Vec<f32>>,
    new: VecDeque<Vec<f32>>,
    agreement: Agreement,
}

/// The shadow channel and agreement windows of one deployment.
pub struct ShadowRunner {
    model: String,
    queue: usize,
    window: usize,
    timeout: Duration,
    tx: Mutex<Option<mpsc::Sender<ShadowJob>>>,
    /// Candidate version → its window; kept after the shadow stops so `promote` can read it.
    windows: Arc<Mutex<HashMap<String, Window>>>,
}

impl ShadowRunner {
    pub fn new(model: String, queue: usize, window: usize, timeout: Duration) -> Self {
        Self {
            model,
            queue,
            window,
            timeout,
            tx: Mutex::new(None),
            windows: Arc::default(),
        }
    }

    /// Starts (or restarts) shadowing to `version` with a fresh agreement window.
    pub fn start(&self, version: &str) {
        self.windows
            .lock()
            .expect("shadow windows")
            .insert(version.to_string(), Window::default());
        self.send_copies();
    }

    /// Shadows to `version` again, keeping its agreement window (an undone operation).
    pub fn resume(&self, version: &str) {
        self.windows
            .lock()
            .expect("shadow windows")
            .entry(version.to_string())
            .or_default();
        self.send_copies();
    }

    /// A fresh queue and task for the copies.
    fn send_copies(&self) {
        let (tx, rx) = mpsc::channel(self.queue);
        let windows = Arc::clone(&self.windows);
        let (model, capacity, timeout) = (self.model.clone(), self.window, self.timeout);
        tokio::spawn(run(rx, windows, model, capacity, timeout));
        // Replacing the sender ends the previous task once its queue is drained.
        *self.tx.lock().expect("shadow sender") = Some(tx);
    }

    /// Stops sending copies; what is already queued still completes.
    pub fn stop(&self) {
        self.tx.lock().expect("shadow sender").take();
    }

    /// Offers a copy of a live request; never waits.
    pub fn offer(&self, job: ShadowJob) {
        let version = job.candidate.info.version.clone();
        let busy = job.candidate.queue_depth() * 2 > job.candidate.config.queue_capacity;
        let sent = match self.tx.lock().expect("shadow sender").as_ref() {
            Some(tx) if !busy => tx.try_send(job).is_ok(),
            _ => false,
        };
        if !sent {
            m::shadow_request(&self.model, &version, "dropped");
        }
    }

    pub fn agreement(&self, version: &str) -> Option<Agreement> {
        let windows = self.windows.lock().expect("shadow windows");
        windows.get(version).map(|w| w.agreement.clone())
    }

    pub fn forget(&self, version: &str) {
        self.windows.lock().expect("shadow windows").remove(version);
    }
}

async fn run(
    mut rx: mpsc::Receiver<ShadowJob>,
    windows: Arc<Mutex<HashMap<String, Window>>>,
    model: String,
    capacity: usize,
    timeout: Duration,
) {
    while let Some(job) = rx.recv().await {
        let version = job.candidate.info.version.clone();
        let keys = job.work.keys();
        let Some(answer) = job.work.run(&job.candidate, timeout).await else {
            m::shadow_request(&model, &version, "failed");
            continue;
        };
        m::shadow_request(&model, &version, "ok");
        let mut all = windows.lock().expect("shadow windows");
        let Some(window) = all.get_mut(&version) else {
            continue; // the shadow was restarted or the version unloaded meanwhile
        };
        for ((key, old), new) in keys.into_iter().zip(job.primary).zip(answer) {
            if window.texts.contains(&key) {
                continue; // repeated inputs would count as perfect agreement
            }
            window.texts.push_back(key);
            window.old.push_back(old);
            window.new.push_back(new);
            if window.texts.len() > capacity {
                window.texts.pop_front();
                window.old.pop_front();
                window.new.pop_front();
            }
        }
        let old: Vec<Vec<f32>> = window.old.iter().cloned().collect();
        let new: Vec<Vec<f32>> = window.new.iter().cloned().collect();
        window.agreement = match job.candidate.info.kind {
            ModelKind::Embedding => agreement::agreement(&old, &new),
            ModelKind::Reranker | ModelKind::Classifier => agreement::score_agreement(&old, &new),
        };
        m::shadow_agreement(&model, &version, &window.agreement);
    }
}
