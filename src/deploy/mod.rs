//! Which version answers: several versions of a model served at once, and how traffic moves
//! between them — canary, shadow, promotion, rollback — with every action audited and replayed.
//!
//! - [`registry`]: every loaded version by `name@version`, and per name its [`Deployment`];
//! - [`routed`]: [`Target`] (model + route key) → [`Routed`], and [`Routed::embed`], the
//!   embedding path every caller above takes;
//! - [`deployment`]: one name's atomically swapped route table, history and monitors;
//! - [`routing`]: weighted, sticky canary buckets;
//! - [`shadow`] and [`agreement`]: candidate copies off the critical path, and how alike the two
//!   versions' similarity structures are;
//! - [`rollback`]: canary error ratio / p99 window that triggers automatic rollback;
//! - [`audit`]: the JSON-lines event log and its replay fold;
//! - [`ops`]: the lifecycle operations (load, canary, shadow, promote, rollback, unload, replay)
//!   the admin API calls, and [`status`], their typed answers;
//! - [`error`]: [`DeployError`]; [`metrics`]: the role, canary and shadow series.
//!
//! Nothing here runs a model or knows HTTP; it only chooses which
//! [`ModelHandle`](crate::serving::ModelHandle) a request goes to.

pub mod agreement;
pub mod audit;
pub mod deployment;
pub mod error;
pub mod metrics;
pub mod ops;
pub mod registry;
pub mod rollback;
pub mod routed;
pub mod routing;
pub mod shadow;
pub mod status;

pub use deployment::{Canary, Deployment, Policy, Role, RouteTable, ShadowTarget};
pub use error::DeployError;
pub use ops::{Faults, Lifecycle, LoadDefaults, LoadSpec};
pub use registry::Registry;
pub use routed::{Routed, Target, TensorInputs};
