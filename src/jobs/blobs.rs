//! Where batch data lives on disk, in `--batch-dir` (default `<state-dir>/batches/`; a volume
//! every replica shares when jobs run across replicas): uploads and finished output files in
//! `files/`, each chunk attempt's result lines in `chunks/<batch>/`.
//!
//! Every write is whole or absent: written to a temporary name, fsynced, renamed into place and
//! the directory fsynced, so a crash leaves the old file or the new one, never a torn one, and a
//! journal record naming a blob is only written once the blob is durable.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use super::{types::new_id, JobsError};
use crate::journal::sync_dir;

#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
}

impl Blobs {
    /// Opens (creating) the store in `root`, and clears temporary files a crash left.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let root = root.to_path_buf();
        for dir in ["files", "chunks", "tmp"] {
            fs::create_dir_all(root.join(dir))?;
        }
        for entry in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The content of file `id`.
    pub fn file_path(&self, id: &str) -> PathBuf {
        self.root.join("files").join(id)
    }

    /// The result lines of one chunk attempt.
    pub fn chunk_path(&self, batch: &str, chunk: usize, attempt: &str) -> PathBuf {
        self.root
            .join("chunks")
            .join(batch)
            .join(format!("{chunk:06}-{attempt}.jsonl"))
    }

    /// A fresh temporary path on the same file system (so the rename into place is atomic).
    pub fn temp_path(&self) -> PathBuf {
        self.root.join("tmp").join(new_id("part-"))
    }

    /// Writes `bytes` to `path` atomically and durably.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), JobsError> {
        let temp = self.temp_path();
        let written = (|| -> io::Result<()> { File::create(&temp)?.write_all(bytes) })();
        written.map_err(|e| JobsError::storage("writing a batch file", e))?;
        self.publish(&temp, path)
    }

    /// Moves the durable temporary file `temp` to `path` and makes the rename durable.
    pub fn publish(&self, temp: &Path, path: &Path) -> Result<(), JobsError> {
        let dir = path.parent().expect("blob paths have a parent");
        let new_dir = !dir.exists();
        let published = fs::create_dir_all(dir)
            .and_then(|()| File::open(temp)?.sync_all())
            .and_then(|()| fs::rename(temp, path));
        if let Err(err) = published {
            let _ = fs::remove_file(temp);
            return Err(JobsError::storage("publishing a batch file", err));
        }
        let parent = dir.parent().filter(|_| new_dir);
        [Some(dir), parent]
            .into_iter()
            .flatten()
            .try_for_each(sync_dir)
            .map_err(|e| JobsError::storage("publishing a batch file", e))
    }

    /// Removes a file, if present (deleted files, superseded attempts, finished batches).
    pub fn remove(&self, path: &Path) {
        if let Err(err) = fs::remove_file(path) {
            if err.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), %err, "could not remove a batch file");
            }
        }
    }

    /// Removes a finished batch's chunk results.
    pub fn remove_chunks(&self, batch: &str) {
        let dir = self.root.join("chunks").join(batch);
        if let Err(err) = fs::remove_dir_all(&dir) {
            if err.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), %err, "could not remove a batch's chunks");
            }
        }
    }
}
