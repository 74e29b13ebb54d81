//! Unit tests of the parent module.

use super::*;
use crate::index::{generation::publish_store, Search, FORMAT_VERSION};

fn header(search: Search) -> IndexHeader {
    IndexHeader {
        format: FORMAT_VERSION,
        model: "m".into(),
        model_version: "v".into(),
        model_sha256: "ab".into(),
        dimensions: 2,
        count: 0,
        search,
        created_unix: 0,
    }
}

fn meta(section: &str) -> Metadata {
    let mut m = Metadata::new();
    m.insert("section".into(), section.into());
    m
}

fn upsert(id: &str, v: [f32; 2], section: &str) -> WalRecord {
    WalRecord::Upsert {
        id: id.into(),
        metadata: meta(section),
        vector: v.to_vec(),
    }
}

fn tuning(compact_after: usize) -> Tuning {
    Tuning {
        compact_after,
        debug_compact_delay: None,
    }
}

fn ids(index: &LiveIndex, q: [f32; 2], k: usize, filter: &Filter) -> Vec<String> {
    let spec = SearchSpec {
        vector: &q,
        k,
        filter,
        exclude: &HashSet::new(),
        exact: false,
        ef_search: None,
    };
    index
        .search(&spec)
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect()
}

#[test]
fn writes_survive_reopen_and_compaction() {
    for search in [Search::Exact, Search::Hnsw] {
        let dir = tempfile::tempdir().unwrap();
        let base = Store::from_parts(
            2,
            vec![1.0, 0.0, 0.0, 1.0],
            vec![("x".into(), meta("a")), ("y".into(), meta("b"))],
        )
        .unwrap();
        publish_store(dir.path(), &header(search), &base).unwrap();
        let index = LiveIndex::open("t", dir.path(), tuning(1000), |_| Ok(())).unwrap();
        assert_eq!(index.graph_ready(), search == Search::Hnsw);
        index.write(upsert("z", [0.6, 0.8], "a")).unwrap();
        index.write(WalRecord::Delete { id: "y".into() }).unwrap();
        index.write(upsert("x", [-1.0, 0.0], "b")).unwrap();
        let all = Filter::default();
        assert_eq!(ids(&index, [1.0, 0.0], 5, &all), ["z", "x"]);
        drop(index);

        let index = LiveIndex::open("t", dir.path(), tuning(1000), |_| Ok(())).unwrap();
        assert_eq!(ids(&index, [1.0, 0.0], 5, &all), ["z", "x"]);
        let only_a = Filter(vec![("section".into(), vec!["a".into()])]);
        assert_eq!(ids(&index, [1.0, 0.0], 5, &only_a), ["z"]);
        index.compact().unwrap();
        assert_eq!(generation::current_generation(dir.path()).unwrap(), Some(2));
        assert!(!Wal::path_for(dir.path(), 1).exists());
        assert_eq!(
            index.graph_source(),
            (search == Search::Hnsw).then_some("mapped")
        );
        assert_eq!(ids(&index, [1.0, 0.0], 5, &all), ["z", "x"]);
        drop(index);

        let index = LiveIndex::open("t", dir.path(), tuning(1000), |_| Ok(())).unwrap();
        assert_eq!(ids(&index, [1.0, 0.0], 5, &all), ["z", "x"]);
        assert_eq!(index.len(), 2);
    }
}

#[test]
fn a_refusing_check_stops_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let empty = Store::from_parts(2, vec![], vec![]).unwrap();
    publish_store(dir.path(), &header(Search::Exact), &empty).unwrap();
    let err = LiveIndex::open("t", dir.path(), tuning(10), |_| {
        anyhow::bail!("other model")
    });
    assert!(err.is_err());
    assert!(LiveIndex::open("t", Path::new("/nonexistent"), tuning(10), |_| Ok(())).is_err());
}
