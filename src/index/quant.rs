//! int8 scalar quantization: the copy of the vectors that searches scan and the graph walks.
//!
//! Each coordinate `j` is stored as a code `c ∈ [-127, 127]` with `x ≈ mid[j] + step[j] · c`,
//! where `mid` and `step` come from the range of that dimension over the items (per-dimension
//! scales: MiniLM's coordinates span ranges that differ several-fold between dimensions, so a
//! single global scale wastes most codes on the narrow ones; `benches/index.rs` measures both
//! with `INFERD_BENCH_QUANT=global`). A query is prepared once: `q[j] · step[j]` rounded to
//! 16-bit weights, so a score is one integer dot product (`i16 × i8`, AVX2 `madd`) plus the
//! constant `Σ q[j] · mid[j]`. Scores from the codes are approximate; callers rescore their best
//! candidates against the exact f32 vectors, which stay on disk.
//!
//! On disk (`vectors.q8`, see [`super::mapped`]): dimension, rows, `mid`, `step`, then the codes
//! row-major. It is derived from `vectors.f32` and rebuilt from it when missing or corrupt.

use std::path::Path;

use anyhow::ensure;

use super::mapped::{self, Words};

const MAGIC: &[u8; 8] = b"INFDQ8\0\0";
const FORMAT: u32 = 1;
/// Body words before `mid`: dimension, rows (low, high), scale mode.
const HEAD_WORDS: usize = 4;
/// Largest query weight: 16383 × 127 × 384 dimensions stays far inside an i32.
const WEIGHT_MAX: f32 = 16383.0;

/// How the per-coordinate ranges are fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// One range per dimension (the default).
    PerDimension,
    /// One range for every coordinate.
    Global,
}

/// Collects coordinate ranges over rows, then yields the [`Quantizer`].
pub struct RangeFit {
    min: Vec<f32>,
    max: Vec<f32>,
}

impl RangeFit {
    pub fn new(dim: usize) -> Self {
        Self {
            min: vec![f32::INFINITY; dim],
            max: vec![f32::NEG_INFINITY; dim],
        }
    }

    pub fn add(&mut self, row: &[f32]) {
        for ((lo, hi), &x) in self.min.iter_mut().zip(&mut self.max).zip(row) {
            *lo = lo.min(x);
            *hi = hi.max(x);
        }
    }

    pub fn finish(self, scale: Scale) -> Quantizer {
        let (mut min, mut max) = (self.min, self.max);
        if scale == Scale::Global {
            let lo = min.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = max.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            min.iter_mut().for_each(|m| *m = lo);
            max.iter_mut().for_each(|m| *m = hi);
        }
        let (mid, step) = min
            .iter()
            .zip(&max)
            .map(|(&lo, &hi)| {
                if lo.is_finite() && hi.is_finite() {
                    ((lo + hi) / 2.0, ((hi - lo) / 254.0).max(f32::MIN_POSITIVE))
                } else {
                    (0.0, 1.0 / 127.0) // no rows yet: codes cover [-1, 1]
                }
            })
            .unzip();
        Quantizer { mid, step, scale }
    }
}

/// Per-dimension affine int8 codes (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantizer {
    mid: Vec<f32>,
    step: Vec<f32>,
    scale: Scale,
}

impl Quantizer {
    pub fn fit(matrix: &[f32], dim: usize, scale: Scale) -> Self {
        let mut fit = RangeFit::new(dim);
        matrix.chunks_exact(dim).for_each(|row| fit.add(row));
        fit.finish(scale)
    }

    pub fn dim(&self) -> usize {
        self.mid.len()
    }

    pub fn encode(&self, row: &[f32], out: &mut [i8]) {
        for (((c, &x), &m), &s) in out.iter_mut().zip(row).zip(&self.mid).zip(&self.step) {
            *c = ((x - m) / s).round().clamp(-127.0, 127.0) as i8;
        }
    }

    pub fn decode(&self, codes: &[i8], out: &mut [f32]) {
        for (((x, &c), &m), &s) in out.iter_mut().zip(codes).zip(&self.mid).zip(&self.step) {
            *x = m + s * c as f32;
        }
    }

    /// The query in the codes' terms: score any row with [`Prepared::score`].
    pub fn prepare(&self, query: &[f32]) -> Prepared {
        let scaled: Vec<f32> = query.iter().zip(&self.step).map(|(q, s)| q * s).collect();
        let peak = scaled.iter().fold(0f32, |m, x| m.max(x.abs()));
        let unit = if peak > 0.0 { peak / WEIGHT_MAX } else { 1.0 };
        Prepared {
            weights: scaled.iter().map(|x| (x / unit).round() as i16).collect(),
            unit,
            bias: query.iter().zip(&self.mid).map(|(q, m)| q * m).sum(),
        }
    }

    /// The query prepared from a stored row's codes (for distances between items).
    pub fn prepare_codes(&self, codes: &[i8]) -> Prepared {
        let mut row = vec![0f32; codes.len()];
        self.decode(codes, &mut row);
        self.prepare(&row)
    }
}

/// A query ready to score codes: `bias + unit · Σ weights[j] · codes[j]` ≈ `query · row`.
pub struct Prepared {
    weights: Vec<i16>,
    unit: f32,
    bias: f32,
}

impl Prepared {
    pub fn score(&self, codes: &[i8]) -> f32 {
        self.bias + self.unit * dot_i16_i8(&self.weights, codes) as f32
    }

    /// `out[i]` = the score of row `i` of `codes` (row-major).
    pub fn score_rows(&self, codes: &[i8], out: &mut [f32]) {
        for (row, o) in codes.chunks_exact(self.weights.len()).zip(out) {
            *o = self.score(row);
        }
    }
}

/// The int8 codes of every base row and the quantizer that reads them.
pub struct Codes {
    quantizer: Quantizer,
    words: Words,
    rows: usize,
}

impl Codes {
    /// Quantizes `matrix` (row-major f32) with a quantizer fitted to it.
    pub fn from_f32(matrix: &[f32], dim: usize, scale: Scale) -> Self {
        let quantizer = Quantizer::fit(matrix, dim, scale);
        let mut codes = Self::with_quantizer(quantizer, matrix.len() / dim);
        codes.fill(matrix);
        codes
    }

    /// Zeroed codes for `rows` rows, to fill in order with [`Codes::fill_rows`].
    pub fn with_quantizer(quantizer: Quantizer, rows: usize) -> Self {
        let dim = quantizer.dim();
        let words = vec![0u32; (rows * dim).div_ceil(4)];
        Self {
            quantizer,
            words: Words::Owned(words),
            rows,
        }
    }

    fn fill(&mut self, matrix: &[f32]) {
        self.fill_rows(0, matrix);
    }

    /// Encodes `matrix`'s rows as rows `first..` (only on codes still in memory).
    pub fn fill_rows(&mut self, first: usize, matrix: &[f32]) {
        let dim = self.quantizer.dim();
        let Words::Owned(words) = &mut self.words else {
            panic!("mapped codes are read-only");
        };
        let bytes: &mut [i8] = bytemuck::cast_slice_mut(words);
        for (i, row) in matrix.chunks_exact(dim).enumerate() {
            let at = (first + i) * dim;
            self.quantizer.encode(row, &mut bytes[at..at + dim]);
        }
    }

    pub fn quantizer(&self) -> &Quantizer {
        &self.quantizer
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Every row's codes, row-major.
    pub fn all(&self) -> &[i8] {
        let dim = self.quantizer.dim();
        &bytemuck::cast_slice(self.code_words())[..self.rows * dim]
    }

    pub fn row(&self, row: u32) -> &[i8] {
        let dim = self.quantizer.dim();
        &self.all()[row as usize * dim..(row as usize + 1) * dim]
    }

    /// Bytes of codes held (resident once touched).
    pub fn bytes(&self) -> usize {
        self.rows * self.quantizer.dim()
    }

    fn code_words(&self) -> &[u32] {
        match &self.words {
            Words::Owned(words) => words,
            Words::Mapped(_) => &self.words.as_slice()[HEAD_WORDS + 2 * self.quantizer.dim()..],
        }
    }

    /// Writes `vectors.q8` (fsynced).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let q = &self.quantizer;
        let mode = match q.scale {
            Scale::PerDimension => 0,
            Scale::Global => 1,
        };
        let rows = self.rows as u64;
        let head = [q.dim() as u32, rows as u32, (rows >> 32) as u32, mode];
        let mid: &[u32] = bytemuck::cast_slice(&q.mid);
        let step: &[u32] = bytemuck::cast_slice(&q.step);
        mapped::write(path, MAGIC, FORMAT, &[&head, mid, step, self.code_words()])
    }

    /// Maps `vectors.q8`, refusing it unless it holds `rows` rows of `dim` codes.
    pub fn open(path: &Path, dim: usize, rows: usize) -> anyhow::Result<Self> {
        let words = mapped::open(path, MAGIC, FORMAT)?;
        let body = words.as_slice();
        ensure!(body.len() >= HEAD_WORDS, "{} has no header", path.display());
        let found_rows = body[1] as usize | ((body[2] as usize) << 32);
        ensure!(
            body[0] as usize == dim && found_rows == rows,
            "{} holds {found_rows} rows of {} codes, the generation has {rows} of {dim}",
            path.display(),
            body[0]
        );
        let need = HEAD_WORDS + 2 * dim + (rows * dim).div_ceil(4);
        ensure!(
            body.len() == need,
            "{} has {} words, expected {need}",
            path.display(),
            body.len()
        );
        let floats = |at: usize| -> Vec<f32> { bytemuck::cast_slice(&body[at..at + dim]).to_vec() };
        let scale = if body[3] == 1 {
            Scale::Global
        } else {
            Scale::PerDimension
        };
        let quantizer = Quantizer {
            mid: floats(HEAD_WORDS),
            step: floats(HEAD_WORDS + dim),
            scale,
        };
        ensure!(
            quantizer.step.iter().all(|s| s.is_finite() && *s > 0.0)
                && quantizer.mid.iter().all(|m| m.is_finite()),
            "{} has invalid scales",
            path.display()
        );
        Ok(Self {
            quantizer,
            words,
            rows,
        })
    }
}

/// `Σ a[i] · b[i]` in 32-bit integers, AVX2 when the CPU has it.
pub fn dot_i16_i8(a: &[i16], b: &[i8]) -> i32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if crate::model::isa().avx2_fma {
            // SAFETY: `isa` reports AVX2 only where the CPU has it.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_scalar(a, b)
}

fn dot_scalar(a: &[i16], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_avx2(a: &[i16], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let full = n / 16 * 16;
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i < full {
        // SAFETY: i + 16 <= n, so both 16-element loads are in bounds (unaligned loads).
        unsafe {
            let w = _mm256_loadu_si256(a.as_ptr().add(i) as *const __m256i);
            let c = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.as_ptr().add(i) as *const __m128i));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(w, c));
        }
        i += 16;
    }
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` is 32 bytes, the size of one register.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc) };
    lanes.iter().sum::<i32>() + dot_scalar(&a[full..n], &b[full..n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::synthetic::Mixture;

    #[test]
    fn the_simd_dot_equals_the_scalar_one() {
        for n in [0, 1, 15, 16, 17, 384, 385] {
            let a: Vec<i16> = (0..n).map(|i| ((i * 917) % 16383) as i16 - 8000).collect();
            let b: Vec<i8> = (0..n).map(|i| ((i * 37) % 255) as i8).collect();
            assert_eq!(dot_i16_i8(&a, &b), dot_scalar(&a, &b), "n={n}");
        }
    }

    #[test]
    fn scores_track_the_exact_dot_product() {
        let dim = 384;
        let mixture = Mixture::new(dim, 20, 0.75, 3);
        let rows = mixture.sample(500, 4);
        let queries = mixture.sample(20, 5);
        for scale in [Scale::PerDimension, Scale::Global] {
            let codes = Codes::from_f32(&rows, dim, scale);
            let mut worst = 0f32;
            for q in queries.chunks_exact(dim) {
                let prepared = codes.quantizer().prepare(q);
                for (r, row) in rows.chunks_exact(dim).enumerate() {
                    let exact: f32 = row.iter().zip(q).map(|(a, b)| a * b).sum();
                    worst = worst.max((prepared.score(codes.row(r as u32)) - exact).abs());
                }
            }
            // A plausible bug (dropped bias, wrong step, no rounding) is off by far more.
            assert!(worst < 0.02, "{scale:?}: worst error {worst}");
        }
    }

    #[test]
    fn codes_round_trip_through_a_file() {
        let dim = 24;
        let rows = Mixture::new(dim, 4, 0.5, 1).sample(37, 2);
        let codes = Codes::from_f32(&rows, dim, Scale::PerDimension);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors.q8");
        codes.write(&path).unwrap();
        let back = Codes::open(&path, dim, 37).unwrap();
        assert_eq!(back.all(), codes.all());
        assert_eq!(back.quantizer(), codes.quantizer());
        assert!(Codes::open(&path, dim, 36).is_err());
        assert!(Codes::open(&path, dim + 1, 37).is_err());
        let mut decoded = vec![0f32; dim];
        back.quantizer().decode(back.row(3), &mut decoded);
        let err: f32 = decoded
            .iter()
            .zip(&rows[3 * dim..4 * dim])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 0.01, "decode error {err}");
    }
}
