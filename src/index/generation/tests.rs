//! Unit tests of the parent module.

use super::*;
use crate::index::{store::Metadata, synthetic, FORMAT_VERSION};

pub(crate) fn header(search: Search, dim: usize) -> IndexHeader {
    IndexHeader {
        format: FORMAT_VERSION,
        model: "m".into(),
        model_version: "v".into(),
        model_sha256: "ab".into(),
        dimensions: dim,
        count: 0,
        search,
        created_unix: 0,
    }
}

#[test]
fn a_generation_dropped_before_it_is_published_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::start(dir.path(), 4).unwrap();
    writer.push("a", b"{}", &[1.0, 0.0, 0.0, 0.0]).unwrap();
    let tmp = dir.path().join(format!("gen-{}.tmp", writer.generation()));
    assert!(tmp.exists());
    drop(writer); // e.g. a full disk failed the next push
    assert!(!tmp.exists(), "an unfinished generation keeps its space");
    assert_eq!(current_generation(dir.path()).unwrap(), None);
}

#[test]
fn a_published_generation_loads_with_its_codes_and_graph() {
    let dim = 16;
    let vectors = synthetic::uniform_unit_vectors(300, dim, 3);
    let items = (0..300)
        .map(|i| {
            let mut m = Metadata::new();
            m.insert("n".into(), i.into());
            (format!("id \"{i}\""), m)
        })
        .collect();
    let store = Store::from_parts(dim, vectors.clone(), items).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gen = publish_store(dir.path(), &header(Search::Hnsw, dim), &store).unwrap();
    assert_eq!(gen, 1);
    let loaded = load(dir.path()).unwrap();
    assert!(matches!(loaded.graph, GraphLoad::Mapped(_)));
    assert_eq!(loaded.header.count, 300);
    assert_eq!(loaded.store.row_of("id \"7\""), Some(7));
    assert_eq!(loaded.store.metadata(7)["n"], 7);
    assert_eq!(loaded.store.vector(7).unwrap(), &vectors[7 * dim..8 * dim]);

    // Damaged derived files: the codes are rebuilt at load, the graph reported unusable.
    let gdir = generation_dir(dir.path(), 1);
    let q8 = fs::read(gdir.join(CODES)).unwrap();
    fs::write(gdir.join(CODES), &q8[..q8.len() / 2]).unwrap();
    let g = fs::read(gdir.join(GRAPH)).unwrap();
    fs::write(gdir.join(GRAPH), &g[..g.len() - 8]).unwrap();
    let loaded = load(dir.path()).unwrap();
    assert!(matches!(&loaded.graph, GraphLoad::Unusable(why) if why.contains("truncated")));
    assert_eq!(
        fs::read(gdir.join(CODES)).unwrap(),
        q8,
        "codes rebuilt identically"
    );
}
