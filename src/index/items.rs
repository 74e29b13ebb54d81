//! Item ids and metadata, packed: what an index holds per row besides its vectors.
//!
//! Ids live in one byte arena with a start offset per row, and the id → row lookup is a hash
//! table of row numbers (4 bytes a row) that compares against the arena, so an id costs its
//! bytes plus about 13 bytes. Metadata is kept as its compact JSON text in a second arena,
//! with identical texts stored once when a generation loads (a catalog's metadata repeats:
//! 63,436 Debian packages have 59 distinct `{"section": ...}` objects). Filters read the JSON
//! text directly (see [`super::live::Filter`]); results parse it. Rows are append-only;
//! deleting one only clears its `alive` flag.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
};

use anyhow::{bail, ensure};
use hashbrown::HashTable;

use super::store::Metadata;

/// Metadata text → its (start, length) in the arena.
type Shared = HashMap<Box<[u8]>, (u32, u32)>;

/// Ids and metadata of every row an index ever allocated (live or not).
pub struct Items {
    ids: Vec<u8>,
    /// Start of row `r`'s id in `ids`; the id ends where row `r + 1`'s starts.
    id_start: Vec<u32>,
    meta: Vec<u8>,
    /// (start, length) of row `r`'s metadata JSON in `meta`.
    meta_span: Vec<(u32, u32)>,
    alive: Vec<bool>,
    lookup: HashTable<u32>,
    hasher: RandomState,
    /// Metadata texts seen at load, for sharing identical ones (dropped by [`Items::seal`]).
    shared: Option<Shared>,
    live: usize,
}

impl Default for Items {
    fn default() -> Self {
        Self {
            ids: Vec::new(),
            id_start: vec![0],
            meta: Vec::new(),
            meta_span: Vec::new(),
            alive: Vec::new(),
            lookup: HashTable::new(),
            hasher: RandomState::new(),
            shared: Some(HashMap::new()),
            live: 0,
        }
    }
}

impl Items {
    /// Rows ever allocated, dead ones included.
    pub fn rows(&self) -> usize {
        self.alive.len()
    }

    /// Live rows.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn is_alive(&self, row: u32) -> bool {
        self.alive[row as usize]
    }

    pub fn id(&self, row: u32) -> &str {
        let r = row as usize;
        let bytes = &self.ids[self.id_start[r] as usize..self.id_start[r + 1] as usize];
        std::str::from_utf8(bytes).expect("ids are stored from &str")
    }

    /// The row's metadata as compact JSON text.
    pub fn metadata_json(&self, row: u32) -> &[u8] {
        let (start, len) = self.meta_span[row as usize];
        &self.meta[start as usize..(start + len) as usize]
    }

    pub fn metadata(&self, row: u32) -> Metadata {
        serde_json::from_slice(self.metadata_json(row)).expect("stored metadata is a JSON object")
    }

    /// The live row of `id`.
    pub fn row_of(&self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id.as_bytes());
        self.lookup.find(hash, |&row| self.id(row) == id).copied()
    }

    /// Appends a live row for `id` (which must not be live already).
    pub fn push(&mut self, id: &str, metadata_json: &[u8]) -> anyhow::Result<u32> {
        ensure!(self.row_of(id).is_none(), "item id {id:?} appears twice");
        let row = self.alive.len() as u32;
        ensure!(
            self.ids.len() + id.len() < u32::MAX as usize
                && self.meta.len() + metadata_json.len() < u32::MAX as usize,
            "an index holds at most 4 GiB of ids and 4 GiB of metadata"
        );
        self.ids.extend_from_slice(id.as_bytes());
        self.id_start.push(self.ids.len() as u32);
        let span = self.store_metadata(metadata_json);
        self.meta_span.push(span);
        self.alive.push(true);
        self.live += 1;
        let hash = self.hasher.hash_one(id.as_bytes());
        let (ids, starts) = (&self.ids, &self.id_start);
        let hasher = &self.hasher;
        self.lookup.insert_unique(hash, row, |&r| {
            let r = r as usize;
            hasher.hash_one(&ids[starts[r] as usize..starts[r + 1] as usize])
        });
        Ok(row)
    }

    fn store_metadata(&mut self, json: &[u8]) -> (u32, u32) {
        if let Some(&span) = self.shared.as_ref().and_then(|s| s.get(json)) {
            return span;
        }
        let span = (self.meta.len() as u32, json.len() as u32);
        self.meta.extend_from_slice(json);
        if let Some(shared) = &mut self.shared {
            shared.insert(json.into(), span);
        }
        span
    }

    /// Stops sharing metadata texts (after a load: live writes append theirs).
    pub fn seal(&mut self) {
        self.shared = None;
        self.ids.shrink_to_fit();
        self.meta.shrink_to_fit();
    }

    /// Marks `id` dead; returns its row if it was live.
    pub fn remove(&mut self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id.as_bytes());
        let (ids, starts) = (&self.ids, &self.id_start);
        let entry = self
            .lookup
            .find_entry(hash, |&r| {
                let r = r as usize;
                &ids[starts[r] as usize..starts[r + 1] as usize] == id.as_bytes()
            })
            .ok()?;
        let (row, _) = entry.remove();
        self.alive[row as usize] = false;
        self.live -= 1;
        Some(row)
    }

    /// Bytes held, approximately (arenas, offsets, flags and the lookup table).
    pub fn bytes(&self) -> usize {
        self.ids.capacity()
            + self.id_start.capacity() * 4
            + self.meta.capacity()
            + self.meta_span.capacity() * 8
            + self.alive.capacity()
            + self.lookup.capacity() * 5
    }
}

/// Metadata as the compact JSON text stored per row.
pub fn metadata_text(metadata: &Metadata) -> Vec<u8> {
    serde_json::to_vec(metadata).expect("a JSON map serialises")
}

/// Checks `json` is a JSON object (what a catalog or a write may store as metadata).
pub fn check_metadata_json(json: &[u8]) -> anyhow::Result<()> {
    match serde_json::from_slice::<serde_json::Value>(json)? {
        serde_json::Value::Object(_) => Ok(()),
        _ => bail!("metadata must be a JSON object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve_and_metadata_is_shared_at_load() {
        let mut items = Items::default();
        let games = br#"{"section":"games"}"#;
        for i in 0..1000 {
            items.push(&format!("id-{i}"), games).unwrap();
        }
        items.push("other", br#"{"section":"web"}"#).unwrap();
        assert!(items.push("id-3", games).is_err());
        items.seal();
        assert_eq!(
            items.meta.len(),
            games.len() + 17,
            "identical texts stored once"
        );
        assert_eq!(items.row_of("id-999"), Some(999));
        assert_eq!(items.id(1000), "other");
        assert_eq!(items.metadata(1000)["section"], "web");
        assert_eq!(items.row_of("nope"), None);

        assert_eq!(items.remove("id-5"), Some(5));
        assert_eq!(items.remove("id-5"), None);
        assert!(!items.is_alive(5));
        assert_eq!(items.len(), 1000);
        // The id may come back as a new row.
        let row = items.push("id-5", br#"{"section":"libs"}"#).unwrap();
        assert_eq!((row, items.row_of("id-5")), (1001, Some(1001)));
        assert_eq!(items.metadata(1001)["section"], "libs");
    }
}
