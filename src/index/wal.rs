//! The write-ahead log of live item writes: every acknowledged `PUT`/`DELETE` is here.
//!
//! One log per index generation (`wal-N.log` beside `gen-N/`). A record is
//! `[len u32][crc32 u32][payload]`, little-endian; the payload is an op byte, the id, and for an
//! upsert the metadata JSON and the vector. [`Wal::append`] writes the record and `fdatasync`s
//! before returning, and the HTTP handler answers only after that, so an acknowledged write
//! survives a crash. Replay stops at the first torn or corrupt record (a crash mid-append can
//! only tear the last one, which was never acknowledged) and truncates the log there.
//! Compaction folds the log into a new generation, whose log starts empty.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use anyhow::Context;

use super::store::{sync_dir, Metadata};

const OP_UPSERT: u8 = 1;
const OP_DELETE: u8 = 2;
/// A record larger than this is treated as corruption rather than allocated.
const MAX_RECORD: usize = 64 << 20;

/// One logged write.
#[derive(Debug, Clone, PartialEq)]
pub enum WalRecord {
    Upsert {
        id: String,
        metadata: Metadata,
        vector: Vec<f32>,
    },
    Delete {
        id: String,
    },
}

/// An open log, positioned for appends.
pub struct Wal {
    file: File,
    path: PathBuf,
    records: usize,
}

impl Wal {
    pub fn path_for(dir: &Path, gen: u64) -> PathBuf {
        dir.join(format!("wal-{gen}.log"))
    }

    /// Opens (creating if needed) the log of generation `gen`; returns it and its records.
    pub fn open(dir: &Path, gen: u64) -> anyhow::Result<(Self, Vec<WalRecord>)> {
        let path = Self::path_for(dir, gen);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if !existed {
            sync_dir(dir)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, valid) = decode_all(&bytes);
        if valid < bytes.len() {
            tracing::warn!(
                path = %path.display(), kept_records = records.len(),
                dropped_bytes = bytes.len() - valid,
                "write-ahead log ends in a torn record (a crash mid-write); truncating it"
            );
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        let wal = Self {
            file,
            path,
            records: records.len(),
        };
        Ok((wal, records))
    }

    /// Appends `record` and makes it durable before returning.
    pub fn append(&mut self, record: &WalRecord) -> anyhow::Result<()> {
        let bytes = encode(record);
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("appending to {}", self.path.display()))?;
        self.records += 1;
        Ok(())
    }

    /// Records in this log (replayed plus appended).
    pub fn records(&self) -> usize {
        self.records
    }
}

/// The on-disk bytes of one record, framing included.
pub fn encode(record: &WalRecord) -> Vec<u8> {
    let mut payload = Vec::new();
    let put_bytes = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    match record {
        WalRecord::Upsert {
            id,
            metadata,
            vector,
        } => {
            payload.push(OP_UPSERT);
            put_bytes(&mut payload, id.as_bytes());
            let meta = serde_json::to_vec(metadata).expect("JSON map serialises");
            put_bytes(&mut payload, &meta);
            payload.extend_from_slice(&(vector.len() as u32).to_le_bytes());
            for x in vector {
                payload.extend_from_slice(&x.to_le_bytes());
            }
        }
        WalRecord::Delete { id } => {
            payload.push(OP_DELETE);
            put_bytes(&mut payload, id.as_bytes());
        }
    }
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Every intact record from the start, and the byte length they cover.
fn decode_all(bytes: &[u8]) -> (Vec<WalRecord>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some((record, len)) = decode_one(&bytes[at..]) {
        records.push(record);
        at += len;
    }
    (records, at)
}

fn decode_one(bytes: &[u8]) -> Option<(WalRecord, usize)> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    if len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(8..8 + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let mut r = Reader(payload);
    let record = match r.u8()? {
        OP_UPSERT => {
            let id = String::from_utf8(r.bytes()?.to_vec()).ok()?;
            let metadata = serde_json::from_slice(r.bytes()?).ok()?;
            let dim = r.u32()? as usize;
            let raw = r.take(dim.checked_mul(4)?)?;
            let vector = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            WalRecord::Upsert {
                id,
                metadata,
                vector,
            }
        }
        OP_DELETE => WalRecord::Delete {
            id: String::from_utf8(r.bytes()?.to_vec()).ok()?,
        },
        _ => return None,
    };
    Some((record, 8 + len))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(id: &str, x: f32) -> WalRecord {
        let mut metadata = Metadata::new();
        metadata.insert("section".into(), "games".into());
        WalRecord::Upsert {
            id: id.into(),
            metadata,
            vector: vec![x, -x, 0.5],
        }
    }

    #[test]
    fn appended_records_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let written = [
            upsert("a", 1.0),
            WalRecord::Delete { id: "a".into() },
            upsert("b", 2.0),
        ];
        {
            let (mut wal, replayed) = Wal::open(dir.path(), 1).unwrap();
            assert!(replayed.is_empty());
            for r in &written {
                wal.append(r).unwrap();
            }
        }
        let (wal, replayed) = Wal::open(dir.path(), 1).unwrap();
        assert_eq!(replayed, written);
        assert_eq!(wal.records(), 3);
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_the_log_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = Wal::path_for(dir.path(), 3);
        let good = encode(&upsert("a", 1.0));
        let torn = encode(&upsert("b", 2.0));
        for cut in [1, 7, torn.len() / 2, torn.len() - 1] {
            let mut bytes = good.clone();
            bytes.extend_from_slice(&torn[..cut]);
            std::fs::write(&path, &bytes).unwrap();
            let (mut wal, replayed) = Wal::open(dir.path(), 3).unwrap();
            assert_eq!(replayed, [upsert("a", 1.0)], "cut at {cut}");
            assert_eq!(std::fs::metadata(&path).unwrap().len(), good.len() as u64);
            // Appends after a truncation land cleanly.
            wal.append(&upsert("c", 3.0)).unwrap();
            drop(wal);
            let (_, replayed) = Wal::open(dir.path(), 3).unwrap();
            assert_eq!(replayed, [upsert("a", 1.0), upsert("c", 3.0)]);
        }
    }

    #[test]
    fn a_corrupt_record_ends_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode(&upsert("a", 1.0));
        let second = bytes.len();
        bytes.extend(encode(&upsert("b", 2.0)));
        bytes[second + 12] ^= 0xff; // flip a payload byte: the CRC no longer matches
        std::fs::write(Wal::path_for(dir.path(), 1), &bytes).unwrap();
        let (_, replayed) = Wal::open(dir.path(), 1).unwrap();
        assert_eq!(replayed, [upsert("a", 1.0)]);
    }
}
