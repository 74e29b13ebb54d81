//! `inferd index build`: read a catalog, embed it through the batched model, publish an index.
//!
//! The catalog is JSON lines (optionally gzipped, by the `.gz` suffix):
//! `{"id": "...", "text": "...", ...}`; every field other than `id` and `text` is kept as the
//! item's metadata (for filters and responses). Texts go through [`ModelHandle::embed`] (the
//! same tokenizer pool, queue and batcher as `serve`) in chunks, several in flight so batches
//! fill. The index, with its int8 codes and (for `--search hnsw`) its graph, is published only
//! when complete (see [`super::generation`]), so an interrupted build leaves the previous
//! index, or none, never a partial one.

use std::{
    collections::{HashSet, VecDeque},
    fs::File,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context};
use serde_json::Value;

use super::{
    generation::{self, Writer},
    graph::Params,
    items::metadata_text,
    postgres,
    store::Metadata,
    IndexHeader, IndexLocation, Search, FORMAT_VERSION,
};
use crate::{
    serving::{Deadline, EmbedRequest, ModelHandle},
    telemetry::Progress,
};

/// Texts per embedding request.
const CHUNK: usize = 64;
/// Requests in flight at once, so the batcher always has the next batch queued.
const IN_FLIGHT: usize = 8;
/// Time one chunk may take, queueing included: generous, a build has no caller waiting.
const CHUNK_BUDGET: Duration = Duration::from_secs(3600);

/// One catalog line.
#[derive(Debug, Clone)]
pub struct CatalogItem {
    pub id: String,
    pub text: String,
    pub metadata: Metadata,
}

/// What a finished build did.
#[derive(Debug)]
pub struct BuildReport {
    pub items: usize,
    pub generation: u64,
    pub seconds: f64,
}

impl BuildReport {
    pub fn items_per_second(&self) -> f64 {
        self.items as f64 / self.seconds.max(1e-9)
    }
}

/// Reads a JSON-lines catalog (gzipped when the name ends in `.gz`).
pub fn read_catalog(path: &Path) -> anyhow::Result<Vec<CatalogItem>> {
    let file = File::open(path).with_context(|| format!("opening catalog {}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let item =
            parse_line(&line).with_context(|| format!("{} line {}", path.display(), n + 1))?;
        if !seen.insert(item.id.clone()) {
            bail!(
                "{} line {}: duplicate id {:?}",
                path.display(),
                n + 1,
                item.id
            );
        }
        items.push(item);
    }
    Ok(items)
}

fn parse_line(line: &str) -> anyhow::Result<CatalogItem> {
    let mut fields: Metadata = serde_json::from_str(line).context("not a JSON object")?;
    let id = match fields.remove("id") {
        Some(Value::String(id)) if !id.is_empty() => id,
        Some(Value::Number(n)) => n.to_string(),
        _ => bail!("`id` must be a non-empty string"),
    };
    let text = match fields.remove("text") {
        Some(Value::String(text)) if !text.trim().is_empty() => text,
        _ => bail!("`text` must be a non-empty string"),
    };
    Ok(CatalogItem {
        id,
        text,
        metadata: fields,
    })
}

/// Embeds `items` with `model` and publishes them as the index in `out`.
pub async fn build(
    model: Arc<ModelHandle>,
    items: Vec<CatalogItem>,
    out: &IndexLocation,
    name: Option<&str>,
    search: Search,
) -> anyhow::Result<BuildReport> {
    let started = Instant::now();
    let dim = model.info.dimensions;
    let progress = Progress::new(items.len() as u64, "embedding catalog");
    let mut vectors = Vec::with_capacity(items.len() * dim);
    let mut pending = VecDeque::new();
    let mut chunks = items.chunks(CHUNK);
    loop {
        while pending.len() < IN_FLIGHT {
            let Some(chunk) = chunks.next() else { break };
            let texts: Vec<String> = chunk.iter().map(|i| i.text.clone()).collect();
            let model = Arc::clone(&model);
            let request = EmbedRequest::new(texts, Deadline::after(CHUNK_BUDGET));
            pending.push_back(tokio::spawn(async move { model.embed(request).await }));
        }
        let Some(next) = pending.pop_front() else {
            break;
        };
        let embedded = next
            .await
            .context("embedding task panicked")?
            .map_err(|e| anyhow::anyhow!("embedding failed: {e}"))?;
        progress.inc(embedded.vectors.len() as u64);
        for v in embedded.vectors {
            vectors.extend_from_slice(&v);
        }
    }
    progress.finish();
    let header = IndexHeader {
        format: FORMAT_VERSION,
        model: model.info.name.clone(),
        model_version: model.info.version.clone(),
        model_sha256: model.info.sha256.clone(),
        dimensions: dim,
        count: items.len(),
        search,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let count = items.len();
    let generation = match out {
        IndexLocation::Dir(dir) => write_dir(dir.clone(), header, items, vectors).await?,
        IndexLocation::Postgres(url) => {
            let name = name.context("a postgresql:// --out needs --name (the index's name)")?;
            let rows = items
                .into_iter()
                .zip(
                    vectors
                        .chunks_exact(dim)
                        .map(<[f32]>::to_vec)
                        .collect::<Vec<_>>(),
                )
                .map(|(item, v)| (item.id, Value::Object(item.metadata), v));
            postgres::schema::publish(url, name, &header, rows).await?;
            1
        }
    };
    Ok(BuildReport {
        items: count,
        generation,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Writes the index directory's next generation and publishes it; returns its number.
async fn write_dir(
    out: PathBuf,
    header: IndexHeader,
    items: Vec<CatalogItem>,
    vectors: Vec<f32>,
) -> anyhow::Result<u64> {
    let dim = header.dimensions;
    tokio::task::spawn_blocking(move || {
        if generation::current_generation(&out)?.is_some() {
            tracing::warn!(out = %out.display(), "replacing an existing index (its live writes too)");
        }
        let mut writer = Writer::start(&out, dim)?;
        for (item, vector) in items.iter().zip(vectors.chunks_exact(dim)) {
            writer.push(&item.id, &metadata_text(&item.metadata), vector)?;
        }
        writer.finish(&header, Params::default())?.publish(|_| Ok(()))
    })
    .await
    .context("index writer panicked")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_lines_keep_extra_fields_as_metadata() {
        let item = parse_line(r#"{"id":"0ad","text":"a game","section":"games"}"#).unwrap();
        assert_eq!(item.id, "0ad");
        assert_eq!(item.text, "a game");
        assert_eq!(item.metadata["section"], "games");
        assert!(parse_line(r#"{"text":"no id"}"#).is_err());
        assert!(parse_line(r#"{"id":"x","text":""}"#).is_err());
        assert!(parse_line("[1,2]").is_err());
    }

    #[test]
    fn gzipped_catalogs_read_and_duplicates_are_refused() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl.gz");
        let mut gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        writeln!(gz, r#"{{"id":"a","text":"x"}}"#).unwrap();
        writeln!(gz, r#"{{"id":"b","text":"y","section":"s"}}"#).unwrap();
        gz.finish().unwrap();
        assert_eq!(read_catalog(&path).unwrap().len(), 2);
        let dup = dir.path().join("d.jsonl");
        std::fs::write(
            &dup,
            "{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"a\",\"text\":\"y\"}\n",
        )
        .unwrap();
        let err = read_catalog(&dup).unwrap_err().to_string();
        assert!(err.contains("duplicate id"), "{err}");
    }
}
