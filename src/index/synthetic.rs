//! Deterministic synthetic unit vectors for benches and tests (no data set, no rand crate).
//!
//! - [`uniform_unit_vectors`]: directions uniform on the sphere (up to the generator's
//!   quantisation). No structure at all: every point is about equally far from every other, the
//!   worst case for a graph index and unlike any real embedding.
//! - [`Mixture`]: a Gaussian mixture shaped like real embeddings: random unit centres, each point
//!   a centre plus anisotropic Gaussian noise (variance falling as 1/(1+j) over the coordinates,
//!   so the noise has an effective dimension of a few dozen, as embeddings do), renormalised.
//!   Queries drawn from the same mixture (another seed) have near neighbours in the set.
//!
//! Rows are generated from a per-row seed, in parallel, so a row does not depend on `n`.

use rayon::prelude::*;

/// SplitMix64: the per-row seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Xorshift64 stream from a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(mix(seed) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller, one of the pair).
    fn normal(&mut self) -> f32 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}

fn normalise(row: &mut [f32]) {
    let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        row.iter_mut().for_each(|x| *x /= norm);
    }
}

/// `n` unit vectors of `dim`, each coordinate uniform in [-0.5, 0.5) before normalising.
pub fn uniform_unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0f32; n * dim];
    v.par_chunks_exact_mut(dim)
        .enumerate()
        .for_each(|(i, row)| {
            let mut rng = Rng::new(seed ^ mix(i as u64));
            row.iter_mut().for_each(|x| *x = rng.uniform() - 0.5);
            normalise(row);
        });
    v
}

/// A Gaussian mixture of unit vectors (see the module doc).
pub struct Mixture {
    dim: usize,
    centres: Vec<f32>,
    /// Noise standard deviation of each coordinate.
    sigma: Vec<f32>,
}

impl Mixture {
    /// `clusters` random unit centres in `dim` dimensions; `spread` is the noise's expected norm
    /// relative to the (unit) centre, so a point's cosine to its centre is about
    /// 1/√(1+spread²).
    pub fn new(dim: usize, clusters: usize, spread: f32, seed: u64) -> Self {
        let mut centres = vec![0f32; clusters * dim];
        for (c, row) in centres.chunks_exact_mut(dim).enumerate() {
            let mut rng = Rng::new(seed ^ mix(!(c as u64)));
            row.iter_mut().for_each(|x| *x = rng.normal());
            normalise(row);
        }
        let weights: Vec<f32> = (0..dim).map(|j| 1.0 / (1.0 + j as f32)).collect();
        let total: f32 = weights.iter().sum();
        let sigma = weights
            .iter()
            .map(|w| spread * (w / total).sqrt())
            .collect();
        Self {
            dim,
            centres,
            sigma,
        }
    }

    pub fn clusters(&self) -> usize {
        self.centres.len() / self.dim
    }

    /// `n` points of the mixture (centres picked uniformly), row-major.
    pub fn sample(&self, n: usize, seed: u64) -> Vec<f32> {
        let dim = self.dim;
        let clusters = self.clusters() as u64;
        let mut v = vec![0f32; n * dim];
        v.par_chunks_exact_mut(dim)
            .enumerate()
            .for_each(|(i, row)| {
                let mut rng = Rng::new(seed ^ mix(i as u64));
                let c = (rng.next_u64() % clusters) as usize;
                let centre = &self.centres[c * dim..(c + 1) * dim];
                for ((x, m), s) in row.iter_mut().zip(centre).zip(&self.sigma) {
                    *x = m + s * rng.normal();
                }
                normalise(row);
            });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn rows_are_unit_and_deterministic() {
        let u = uniform_unit_vectors(100, 24, 3);
        assert_eq!(u, uniform_unit_vectors(100, 24, 3));
        assert_ne!(u, uniform_unit_vectors(100, 24, 4));
        // A row does not depend on how many are generated.
        assert_eq!(&u[..10 * 24], &uniform_unit_vectors(10, 24, 3)[..]);
        let mixture = Mixture::new(24, 8, 0.5, 1);
        let m = mixture.sample(100, 2);
        assert_eq!(m, Mixture::new(24, 8, 0.5, 1).sample(100, 2));
        for row in u.chunks_exact(24).chain(m.chunks_exact(24)) {
            assert!((dot(row, row) - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn mixture_points_sit_near_their_centres() {
        let (dim, spread) = (128, 0.5);
        let mixture = Mixture::new(dim, 16, spread, 9);
        let points = mixture.sample(200, 10);
        let expected = 1.0 / (1.0 + spread * spread).sqrt();
        let mut total = 0.0;
        for p in points.chunks_exact(dim) {
            let best = mixture
                .centres
                .chunks_exact(dim)
                .map(|c| dot(p, c))
                .fold(f32::MIN, f32::max);
            // Far above the ~0 cosine between random directions in 128 dimensions.
            assert!(best > 0.6, "cosine to centre {best}");
            total += best;
        }
        let mean = total / 200.0;
        assert!(
            (mean - expected).abs() < 0.05,
            "mean cosine to centre {mean}"
        );
    }
}
