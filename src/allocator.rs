//! The process allocator: mimalloc, tuned to hand freed memory back to the OS at once.
//!
//! glibc malloc keeps what a burst allocated (a big `/tokenize`, a long batch) in its arenas: in
//! one measurement 8 concurrent 2 MB `/tokenize` requests left 460 MB resident for good.
//! mimalloc returns empty pages, but by default only after a second and only when the thread that
//! owns them allocates again, so memory freed by a thread that then idles (a tokenizer worker
//! after a burst) stays too. With purging immediate and arenas committed on demand, the same
//! burst settles back within a few MB of idle (README, "Reliability"). A leaf: imports nothing.

/// The allocator `main` installs as `#[global_allocator]`.
pub use mimalloc::MiMalloc as Allocator;

/// `mi_option_arena_eager_commit` and `mi_option_purge_delay` in mimalloc's `mi_option_e`
/// (the same in its v2 and v3 headers; libmimalloc-sys does not name them, for stability).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// [`tune`] for an ELF `.init_array` entry: it runs before Rust's runtime makes the first
/// allocation, which reserves mimalloc's first arena (after that, eager commit is decided).
pub extern "C" fn tune_before_main() {
    tune();
}

/// Purge freed pages immediately and commit arena memory only as it is used. Call before threads
/// start: from `.init_array` ([`tune_before_main`]) where there is one, else first in `main`.
pub fn tune() {
    // SAFETY: setting options is not thread-safe; this runs before any thread is spawned.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_numbers_are_the_ones_tuned() {
        // SAFETY: reads only.
        let (commit, delay) = unsafe {
            (
                libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT),
                libmimalloc_sys::mi_option_get(PURGE_DELAY),
            )
        };
        // mimalloc v3's defaults (`src/options.c`): eager commit 2 (on overcommit systems),
        // purge delay 1000 ms. Another option under these numbers would read otherwise.
        assert_eq!((commit, delay), (2, 1000));
    }
}
