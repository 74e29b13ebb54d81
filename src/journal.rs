//! Append-only journals on disk: the rules every log inferd acknowledges from (each index's
//! write-ahead log, the lifecycle audit log) follows. A leaf: it imports nothing from the crate.
//!
//! **Appending.** [`Journal::append`] writes one record and `fdatasync`s it before returning, so
//! a caller acknowledges only what is on disk. An append that fails part-way (ENOSPC, EIO, a
//! short write, a failed sync) is undone: the file is cut back to the end of the last good
//! record and synced, so the next record never lands after garbage and the failed one is not
//! half there. When even that fails the journal turns *read-only*: every later append first
//! retries the repair and is refused until it succeeds, so nothing is acknowledged that replay
//! would not restore. A failed sync is never retried and trusted (PostgreSQL's lesson: after a
//! failed `fsync` the kernel may have dropped the dirty pages); the record is removed instead and
//! the caller, which was told it failed, sends it again.
//!
//! **Recovering.** [`recover`] walks the records from the start. A bad record with nothing
//! valid after it is a *torn tail* — what a crash in the middle of an append leaves, and never
//! acknowledged, because the append had not returned — and is cut off with a warning. A bad
//! record *followed by valid ones* is damage to acknowledged data, and [`Corruption`] is
//! returned: callers refuse to start rather than drop what follows. This is MyRocks' and
//! RocksDB's "tolerate a corrupted tail record, fail on anything else"
//! (`kTolerateCorruptedTailRecords`). A corrupted *last* record cannot be told from a torn write,
//! so it is dropped like one, as they do; every record is checksummed or self-delimiting, so
//! nothing unreadable is ever replayed.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use anyhow::Context;

/// The file operations a journal needs; [`File`] is the real one, tests inject faults.
pub trait Segment: Sized {
    /// Opens `path` for appending, creating it (and making its directory entry durable).
    fn open(path: &Path) -> io::Result<Self>;
    /// Writes all of `bytes` at the end and syncs them.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Cuts the file to `len` bytes and syncs that.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl Segment for File {
    fn open(path: &Path) -> io::Result<Self> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        if !existed {
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(file)
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)?;
        self.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)?;
        self.sync_all()
    }
}

/// Makes a directory's entries (creations, renames) durable.
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync directory {}", dir.display()))
}

/// An append-only file whose appends are durable or undone.
pub struct Journal<S: Segment = File> {
    path: PathBuf,
    /// `None` until first opened (a journal created after a failed open opens on append).
    file: Option<S>,
    /// End of the last durable record: everything before it was synced and acknowledged.
    len: u64,
    /// Bytes past `len` may be on disk, or the file is not open yet: repair before appending.
    needs_repair: bool,
    /// A repair failed; appends are refused until one succeeds.
    read_only: bool,
}

/// An append that did not happen; nothing of it will be replayed.
#[derive(Debug, thiserror::Error)]
#[error("could not append to {}: {source}; {}", path.display(), if *read_only {
    "the journal could not be repaired, so appends are refused until it can be"
} else {
    "the partial record was removed"
})]
pub struct AppendError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
    /// The journal is refusing appends until a repair succeeds.
    pub read_only: bool,
}

impl<S: Segment> Journal<S> {
    /// A journal at `path` that holds `len` good bytes and opens the file on its first append
    /// (cutting anything past `len` first). For a log whose file could not be created yet.
    pub fn pending(path: PathBuf, len: u64) -> Self {
        Self {
            path,
            file: None,
            len,
            needs_repair: true,
            read_only: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether appends are being accepted (false after a failed repair, until one succeeds).
    pub fn writable(&self) -> bool {
        !self.read_only
    }

    /// Appends `record` and syncs it; on failure nothing of it remains (or, when that cannot be
    /// ensured, the journal refuses appends until it can).
    pub fn append(&mut self, record: &[u8]) -> Result<(), AppendError> {
        if let Err(source) = self.repair() {
            return Err(self.failed(source));
        }
        let file = self.file.as_mut().expect("repaired journals are open");
        match file.append(record) {
            Ok(()) => {
                self.len += record.len() as u64;
                self.read_only = false;
                Ok(())
            }
            Err(source) => {
                self.needs_repair = true;
                if let Err(err) = self.repair() {
                    tracing::error!(path = %self.path.display(), %err,
                        "could not remove a failed append; refusing appends until it can be");
                }
                Err(self.failed(source))
            }
        }
    }

    /// Opens the file if needed and cuts it back to the last good record.
    fn repair(&mut self) -> io::Result<()> {
        if !self.needs_repair {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(S::open(&self.path)?),
        };
        file.truncate(self.len)?;
        self.needs_repair = false;
        Ok(())
    }

    fn failed(&mut self, source: io::Error) -> AppendError {
        self.read_only = self.needs_repair;
        AppendError {
            path: self.path.clone(),
            source,
            read_only: self.read_only,
        }
    }
}

/// How records are delimited, which decides where a valid record may start after a bad one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Length-prefixed, checksummed binary records: one may start at any byte.
    Binary,
    /// Newline-terminated lines: one starts after a `\n`.
    Lines,
}

/// A journal's readable records and what was cut off after them.
#[derive(Debug)]
pub struct Recovered<R> {
    pub records: Vec<R>,
    /// Bytes covered by `records`: where the next append goes.
    pub valid: usize,
    /// Bytes of the torn tail after them (0 when the journal ended cleanly).
    pub torn: usize,
}

/// A bad record followed by valid ones: acknowledged data is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the record at byte {at} is unreadable, but valid records follow from byte {resumes}")]
pub struct Corruption {
    pub at: usize,
    pub resumes: usize,
}

/// Decodes records from the start of `bytes`: `decode(rest)` returns the record at the start of
/// `rest` and its length in bytes, or `None` when no valid record starts there.
pub fn recover<R>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Option<(R, usize)>,
    framing: Framing,
) -> Result<Recovered<R>, Corruption> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some((record, len)) = decode(&bytes[at..]).filter(|(_, len)| *len > 0) else {
            break;
        };
        records.push(record);
        at += len;
    }
    let resumes = (at + 1..bytes.len())
        .filter(|&i| framing == Framing::Binary || bytes[i - 1] == b'\n')
        .find(|&i| decode(&bytes[i..]).is_some());
    match resumes {
        Some(resumes) => Err(Corruption { at, resumes }),
        None => Ok(Recovered {
            records,
            valid: at,
            torn: bytes.len() - at,
        }),
    }
}

impl Journal<File> {
    /// Opens (creating) the journal at `path` and recovers it: decodes its records, cuts a torn
    /// tail (logged), and refuses a journal with damage before valid records, naming the file
    /// and byte offset.
    pub fn open<R>(
        path: &Path,
        decode: impl Fn(&[u8]) -> Option<(R, usize)>,
        framing: Framing,
    ) -> anyhow::Result<(Self, Vec<R>)> {
        let mut file =
            <File as Segment>::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", path.display()))?;
        let recovered = recover(&bytes, decode, framing).map_err(|c| {
            anyhow::anyhow!(
                "{} is corrupt: {c}. Refusing to start rather than drop acknowledged records: \
                 restore the file from a backup, or move it aside to start without the records \
                 it holds",
                path.display()
            )
        })?;
        if recovered.torn > 0 {
            tracing::warn!(
                path = %path.display(), kept_records = recovered.records.len(),
                offset = recovered.valid, dropped_bytes = recovered.torn,
                "journal ends in a torn record (a crash mid-append, never acknowledged); cutting it off"
            );
            file.truncate(recovered.valid as u64)
                .with_context(|| format!("truncating the torn tail of {}", path.display()))?;
        }
        let journal = Self {
            path: path.to_path_buf(),
            file: Some(file),
            len: recovered.valid as u64,
            needs_repair: false,
            read_only: false,
        };
        Ok((journal, recovered.records))
    }
}

#[cfg(test)]
mod tests;
