//! Model monitoring through the spawned server: drift signals against a profiled or learned
//! reference (`drift`), and the input policy at the door (`policy`).

mod drift;
mod policy;
