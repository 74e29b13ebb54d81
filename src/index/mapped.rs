//! Checksummed, memory-mapped files: the on-disk form of the quantized vectors and the graph.
//!
//! A file is a 32-byte header — magic (8 bytes), format (u32), crc32 of the body (u32), body
//! length (u64), reserved (u64), little-endian — then the body, read as 32-bit words. Opening
//! maps the file and verifies the magic, the format, the length and the checksum before any
//! word is handed out, so a truncated or corrupt file is refused whole, never served half-read.
//! Files are written once under a temporary name, fsynced and renamed into place; a published
//! file is never modified, which is what makes mapping it safe.

use std::{
    fs::File,
    io::{BufWriter, Seek, SeekFrom, Write},
    path::Path,
};

use anyhow::{ensure, Context};

const HEADER_BYTES: usize = 32;

/// The words of a file body: mapped from disk or held in memory (just built).
pub enum Words {
    Mapped(memmap2::Mmap),
    Owned(Vec<u32>),
}

impl Words {
    pub fn as_slice(&self) -> &[u32] {
        match self {
            // The map starts on a page boundary and the header is 32 bytes, so the body is
            // 4-byte aligned; its length was checked to be a multiple of 4 at open.
            Self::Mapped(map) => bytemuck::cast_slice(&map[HEADER_BYTES..]),
            Self::Owned(words) => words,
        }
    }

    /// Bytes resident or mappable for this body.
    pub fn bytes(&self) -> usize {
        self.as_slice().len() * 4
    }
}

/// Maps `path` and checks it is a complete, uncorrupted file of this `magic` and `format`.
pub fn open(path: &Path, magic: &[u8; 8], format: u32) -> anyhow::Result<Words> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: published files are immutable (written under a temporary name, renamed into
    // place, never rewritten), so the mapping cannot change under the reader.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("mapping {}", path.display()))?;
    ensure!(
        map.len() >= HEADER_BYTES,
        "{} is truncated ({} bytes, shorter than its header)",
        path.display(),
        map.len()
    );
    ensure!(
        &map[..8] == magic,
        "{} is not a {} file",
        path.display(),
        String::from_utf8_lossy(magic).trim_end_matches('\0')
    );
    let word = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().expect("4 bytes"));
    ensure!(
        word(8) == format,
        "{} has format {}, this inferd reads {format}",
        path.display(),
        word(8)
    );
    let body_len = u64::from_le_bytes(map[16..24].try_into().expect("8 bytes")) as usize;
    let body = &map[HEADER_BYTES..];
    ensure!(
        body.len() == body_len && body_len.is_multiple_of(4),
        "{} is truncated or padded: its header says {body_len} body bytes, it has {}",
        path.display(),
        body.len()
    );
    ensure!(
        crc32fast::hash(body) == word(12),
        "{} fails its checksum (corrupt)",
        path.display()
    );
    let _ = map.advise(memmap2::Advice::Random);
    Ok(Words::Mapped(map))
}

/// Writes a file of `magic`/`format` whose body is `body`'s words, and fsyncs it.
pub fn write(path: &Path, magic: &[u8; 8], format: u32, body: &[&[u32]]) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, &file);
    w.write_all(&[0u8; HEADER_BYTES])?;
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    for part in body {
        let bytes: &[u8] = bytemuck::cast_slice(part);
        crc.update(bytes);
        w.write_all(bytes)?;
        len += bytes.len() as u64;
    }
    let mut header = Vec::with_capacity(HEADER_BYTES);
    header.extend_from_slice(magic);
    header.extend_from_slice(&format.to_le_bytes());
    header.extend_from_slice(&crc.finalize().to_le_bytes());
    header.extend_from_slice(&len.to_le_bytes());
    header.extend_from_slice(&0u64.to_le_bytes());
    w.seek(SeekFrom::Start(0))?;
    w.write_all(&header)?;
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    drop(w);
    file.sync_all()
        .with_context(|| format!("fsync {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"INFDTEST";

    #[test]
    fn a_written_file_maps_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        write(&path, MAGIC, 3, &[&[1, 2], &[3]]).unwrap();
        assert_eq!(open(&path, MAGIC, 3).unwrap().as_slice(), [1, 2, 3]);
        assert!(open(&path, MAGIC, 4).is_err());
        assert!(open(&path, b"INFDELSE", 3).is_err());

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let err = open(&path, MAGIC, 3).err().unwrap().to_string();
        assert!(err.contains("truncated"), "{err}");
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(open(&path, MAGIC, 3).is_err());

        let mut flipped = bytes.clone();
        flipped[HEADER_BYTES + 5] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let err = open(&path, MAGIC, 3).err().unwrap().to_string();
        assert!(err.contains("checksum"), "{err}");
    }
}
