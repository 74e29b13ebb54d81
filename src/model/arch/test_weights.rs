//! Reproducible random weights for the architecture parity tests: every run, on every
//! machine, draws the same tensors, so a bar that passes once passes always.

use candle_core::{Device, Result, Tensor};

/// Normal(0, `std`) values of `shape`, drawn from a generator seeded by `name`
/// (each tensor differs from the others, and from run to run none does).
pub(crate) fn normal(name: &str, std: f32, shape: Vec<usize>) -> Result<Tensor> {
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = fastrand::Rng::with_seed(seed);
    let n: usize = shape.iter().product();
    let values = (0..n)
        .map(|_| {
            // Box–Muller: two uniforms give one standard normal value.
            let u = 1.0 - rng.f64();
            let v = rng.f64();
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32 * std
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
}
