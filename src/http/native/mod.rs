//! inferd's own routes: `/infer`, `/info` and the probes.

pub mod infer;
pub mod info;
pub mod probes;
