//! The write-ahead log of live item writes: every acknowledged `PUT`/`DELETE` is here.
//!
//! One log per index generation (`wal-N.log` beside `gen-N/`). A record is
//! `[len u32][crc32 u32][payload]`, little-endian; the payload is an op byte, the id, and for an
//! upsert the metadata JSON and the vector. The file is a [`Journal`], so its durability rules
//! are [`crate::journal`]'s: [`Wal::append`] syncs the record before returning (the HTTP handler
//! answers only after that), a failed append is rolled back or turns the log read-only, and on
//! open a torn last record is cut off while a damaged record followed by valid ones refuses the
//! index (naming the file and byte offset) instead of dropping acknowledged writes.
//! Compaction folds the log into a new generation, whose log starts empty.

use std::path::{Path, PathBuf};

use super::store::Metadata;
use crate::journal::{AppendError, Framing, Journal};

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
    journal: Journal,
    records: usize,
}

impl Wal {
    pub fn path_for(dir: &Path, gen: u64) -> PathBuf {
        dir.join(format!("wal-{gen}.log"))
    }

    /// Opens (creating if needed) the log of generation `gen`; returns it and its records.
    pub fn open(dir: &Path, gen: u64) -> anyhow::Result<(Self, Vec<WalRecord>)> {
        let path = Self::path_for(dir, gen);
        let (journal, records) = Journal::open(&path, decode_one, Framing::Binary)?;
        let wal = Self {
            journal,
            records: records.len(),
        };
        Ok((wal, records))
    }

    /// Appends `record` and makes it durable before returning; on failure nothing of it will be
    /// replayed.
    pub fn append(&mut self, record: &WalRecord) -> Result<(), AppendError> {
        self.journal.append(&encode(record))?;
        self.records += 1;
        Ok(())
    }

    /// Records in this log (replayed plus appended).
    pub fn records(&self) -> usize {
        self.records
    }

    /// Whether appends are accepted (false while a failed append could not be undone).
    pub fn writable(&self) -> bool {
        self.journal.writable()
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

/// The record at the start of `bytes` and its length, framing included; `None` when no intact
/// record starts there.
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

    /// A log of `n` upserts whose second record has a flipped payload byte, and where that
    /// record starts.
    fn damaged_log(n: usize) -> (Vec<u8>, usize) {
        let mut bytes = Vec::new();
        let mut second = 0;
        for i in 0..n {
            if i == 1 {
                second = bytes.len();
            }
            bytes.extend(encode(&upsert(&format!("id{i}"), i as f32)));
        }
        bytes[second + 12] ^= 0xff; // the CRC no longer matches
        (bytes, second)
    }

    #[test]
    fn damage_before_valid_records_refuses_the_log_and_leaves_it_intact() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, second) = damaged_log(3);
        let path = Wal::path_for(dir.path(), 1);
        std::fs::write(&path, &bytes).unwrap();
        let err = format!("{:#}", Wal::open(dir.path(), 1).err().unwrap());
        assert!(err.contains("wal-1.log"), "{err}");
        assert!(err.contains(&format!("byte {second}")), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing truncated");
    }

    #[test]
    fn a_damaged_last_record_is_indistinguishable_from_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, _) = damaged_log(2);
        std::fs::write(Wal::path_for(dir.path(), 1), &bytes).unwrap();
        let (_, replayed) = Wal::open(dir.path(), 1).unwrap();
        assert_eq!(replayed, [upsert("id0", 0.0)]);
    }
}
