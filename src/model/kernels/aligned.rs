//! Zeroed buffers of 4-byte words that start on a cache line.
//!
//! The kernels read weight panels and packed inputs in rows of 64 bytes (an AMX tile row, an
//! AVX-512 register). A heap `Vec` of 4-byte words starts wherever the allocator put it, usually
//! 16 bytes into a line, so every such row straddles two lines and costs two loads: measured on
//! a Sapphire Rapids guest, an AMX tile load took 25 ns from a misaligned buffer and 8.5 ns from
//! an aligned one.

use std::ops::{Deref, DerefMut};

/// Words per cache line.
const WORDS: usize = 16;

/// One cache line of words; the unit the buffer allocates in.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line<T>([T; WORDS]);

/// A zero-initialised `[T]` of a fixed length whose first element starts a cache line.
pub(super) struct Aligned<T: Word> {
    lines: Vec<Line<T>>,
    len: usize,
}

/// A plain 4-byte value with an all-zero default: `u32` or `f32`.
pub(super) trait Word: Copy + Default {}
impl Word for u32 {}
impl Word for f32 {}

impl<T: Word> Aligned<T> {
    pub(super) fn zeroed(len: usize) -> Self {
        Self {
            lines: vec![Line([T::default(); WORDS]); len.div_ceil(WORDS)],
            len,
        }
    }
}

impl<T: Word> Deref for Aligned<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `Line<T>` is `repr(C)` around `[T; WORDS]`, so the lines are a contiguous,
        // initialised run of at least `len` values of `T`.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
}

impl<T: Word> DerefMut for Aligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_line_and_is_zeroed() {
        for len in [0, 1, 15, 16, 17, 1000] {
            let mut buf = Aligned::<u32>::zeroed(len);
            assert_eq!(buf.len(), len);
            assert_eq!(buf.as_ptr() as usize % 64, 0);
            assert!(buf.iter().all(|&w| w == 0));
            buf.iter_mut().for_each(|w| *w = 7);
            assert!(buf.iter().all(|&w| w == 7));
        }
    }
}
