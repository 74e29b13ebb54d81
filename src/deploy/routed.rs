//! Where one request goes, and the embedding path every caller takes through it.
//!
//! [`Target`] is what a caller names: a model (`name`, `name@version`, or `None` for the
//! default) and its route key. [`Registry::route`](super::Registry::route) turns it into a
//! [`Routed`]: the version that answers, in which role, and whether a copy goes to a shadow
//! candidate. [`Routed::embed`] runs the [`EmbedRequest`] on that version, then records canary
//! health and offers the shadow copy; every dialect, `/recommend` and `/items` embed through it,
//! so no caller can opt out of canaries or shadows by accident. [`Routed::classify`] is the same
//! for rerankers and classifiers: canary split and health, sticky keys, metrics and the shadow
//! copy (agreement: the rank correlation of scores). [`Routed::rows`] is KServe's one output
//! for either kind: embeddings or logits, by what the routed model is.

use std::{sync::Arc, time::Instant};

use super::{
    metrics as m,
    shadow::{ShadowJob, ShadowWork},
    Deployment, Role,
};
use crate::{
    model::{heads::ModelKind, tokenizer::Truncation},
    serving::{
        bytes_tensor, Classified, ClassifyRequest, Deadline, EmbedError, EmbedRequest, Embedded,
        ModelHandle, ModelRef, Priority,
    },
};

/// What a caller names: which model, and the key that keeps it on one version during a canary.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `None`: the default model.
    pub model: Option<ModelRef>,
    /// The caller's sticky key (`x-inferd-route-key`); without one a canary share is random.
    pub route_key: Option<String>,
}

impl Target {
    /// Exactly this loaded version: no canary, no shadow.
    pub fn pinned(model: ModelRef) -> Self {
        Self {
            model: Some(model),
            route_key: None,
        }
    }
}

/// Where one request goes: the version that answers it, in which role, and whether a copy goes
/// to a shadow candidate.
pub struct Routed {
    pub handle: Arc<ModelHandle>,
    pub role: Role,
    deployment: Option<Arc<Deployment>>,
    shadow: Option<Arc<ModelHandle>>,
}

impl Routed {
    pub(super) fn new(
        handle: Arc<ModelHandle>,
        role: Role,
        deployment: Option<Arc<Deployment>>,
        shadow: Option<Arc<ModelHandle>>,
    ) -> Self {
        Self {
            handle,
            role,
            deployment,
            shadow,
        }
    }

    /// A request pinned to `name@version`: no canary accounting, no shadow copy.
    pub fn pinned(handle: Arc<ModelHandle>, role: Role) -> Self {
        Self::new(handle, role, None, None)
    }

    /// The version label for the `x-model-version` response header.
    pub fn version(&self) -> &str {
        &self.handle.info.version
    }

    /// Embeds through the chosen version, then records canary health and offers the shadow
    /// copy. The one embedding path above a single version.
    pub async fn embed(&self, req: EmbedRequest) -> Result<Embedded, EmbedError> {
        let started = Instant::now();
        let shadow_copy = self.shadow.as_ref().map(|_| req.clone());
        let result = self.handle.embed(req).await;
        let info = &self.handle.info;
        m::routed(&info.name, &info.version, self.role);
        let Some(deployment) = &self.deployment else {
            return result;
        };
        if self.role == Role::Canary {
            let ok = !matches!(&result, Err(e) if e.is_server_fault());
            deployment.record_canary(&info.version, ok, started.elapsed());
        }
        if let (Some(candidate), Some(copy), Ok(embedded)) = (&self.shadow, shadow_copy, &result) {
            deployment.shadow.offer(ShadowJob {
                candidate: Arc::clone(candidate),
                work: ShadowWork::Embed(copy),
                primary: embedded.vectors.clone(),
            });
        }
        result
    }

    /// Scores through the chosen version's head, then records canary health and offers the
    /// shadow copy, like [`Self::embed`].
    pub async fn classify(&self, req: ClassifyRequest) -> Result<Classified, EmbedError> {
        let started = Instant::now();
        let shadow_copy = self.shadow.as_ref().map(|_| req.clone());
        let result = self.handle.classify(req).await;
        let info = &self.handle.info;
        m::routed(&info.name, &info.version, self.role);
        let Some(deployment) = &self.deployment else {
            return result;
        };
        if self.role == Role::Canary {
            let ok = !matches!(&result, Err(e) if e.is_server_fault());
            deployment.record_canary(&info.version, ok, started.elapsed());
        }
        if let (Some(candidate), Some(copy), Ok(classified)) = (&self.shadow, shadow_copy, &result)
        {
            deployment.shadow.offer(ShadowJob {
                candidate: Arc::clone(candidate),
                work: ShadowWork::Classify(copy),
                primary: classified.logits.clone(),
            });
        }
        result
    }

    /// KServe's output rows for `texts` (and a head's `pairs`): an embedding model's vectors
    /// (`normalize` applies), or a reranker's or classifier's logits.
    pub async fn rows(&self, tensor: TensorInputs) -> Result<Vec<Vec<f32>>, EmbedError> {
        let TensorInputs {
            texts,
            pairs,
            truncation,
            normalize,
            deadline,
        } = tensor;
        match self.handle.info.kind {
            ModelKind::Embedding => {
                let request = EmbedRequest {
                    truncation,
                    normalize,
                    ..EmbedRequest::new(texts, deadline)
                };
                Ok(self.embed(request).await?.vectors)
            }
            ModelKind::Reranker | ModelKind::Classifier => {
                let request = ClassifyRequest {
                    inputs: bytes_tensor::classify_inputs(texts, pairs)?,
                    truncation,
                    deadline,
                    priority: Priority::Interactive,
                };
                Ok(self.classify(request).await?.logits)
            }
        }
    }
}

/// What a KServe infer call asks of [`Routed::rows`].
pub struct TensorInputs {
    pub texts: Vec<String>,
    /// A head's `text_pair` elements (none for an embedding model).
    pub pairs: Option<Vec<String>>,
    pub truncation: Truncation,
    /// Embeddings only.
    pub normalize: bool,
    pub deadline: Deadline,
}
