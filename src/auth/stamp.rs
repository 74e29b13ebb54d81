//! What tells a changed secret file from the one read: size, modification time and inode, so an
//! edit in place, an atomic rename and a Kubernetes Secret volume swapping its files all count.

use std::{os::unix::fs::MetadataExt, path::Path, time::SystemTime};

/// One file's stamp; `None` where the file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

/// The stamps of several files, in order.
pub(super) type Stamps = Vec<Option<Stamp>>;

/// The stamps of `paths` now.
pub(super) fn stamps<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Stamps {
    paths.into_iter().map(of).collect()
}

fn of(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode: meta.ino(),
    })
}
