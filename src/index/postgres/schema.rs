//! The Postgres index's tables, its header row, vector text, and publishing a built index.
//!
//! `inferd index build --out postgresql://…` loads the items into a staging table, builds its
//! HNSW index there, then in one transaction drops the old table, renames the staging one and
//! writes the header row: replicas see the old index or the new one, never a partial one.

use anyhow::{bail, ensure, Context};
use serde_json::Value;
use tokio_postgres::{Client, GenericClient, NoTls};

use crate::index::{graph, IndexHeader, Search, FORMAT_VERSION};

/// Items inserted per statement while building.
const BATCH: usize = 500;

/// Whether `location` names a PostgreSQL database rather than a directory.
pub fn is_url(location: &str) -> bool {
    location.starts_with("postgresql://") || location.starts_with("postgres://")
}

/// The URL with any password replaced, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".into();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{user}:***@{host}")
        }
        None => authority.to_string(),
    };
    let db = path.split('?').next().unwrap_or_default();
    format!("{scheme}://{host}/{db}")
}

/// The quoted items table of index `name`.
pub fn items_table(name: &str) -> anyhow::Result<String> {
    Ok(format!("\"{}\"", table_name(name, "")?))
}

fn table_name(name: &str, suffix: &str) -> anyhow::Result<String> {
    ensure!(
        !name.is_empty()
            && name.len() <= 40
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "a Postgres index name is 1 to 40 letters, digits, `-`, `_` or `.`, got {name:?}"
    );
    Ok(format!("inferd_items_{name}{suffix}"))
}

/// `[x,y,…]`, pgvector's text form.
pub fn vector_text(v: &[f32]) -> String {
    let mut out = String::with_capacity(v.len() * 12 + 2);
    out.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&x.to_string());
    }
    out.push(']');
    out
}

pub fn parse_vector(text: &str) -> anyhow::Result<Vec<f32>> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .context("not a vector")?;
    inner
        .split(',')
        .map(|x| x.trim().parse::<f32>().context("not a vector"))
        .collect()
}

/// The header row of index `name`.
pub async fn read_header(client: &impl GenericClient, name: &str) -> anyhow::Result<IndexHeader> {
    let row = client
        .query_opt(
            "SELECT format, model, model_version, model_sha256, dimensions, search, created_unix \
             FROM inferd_index WHERE name = $1",
            &[&name],
        )
        .await;
    let row = match row {
        Ok(row) => row,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => None,
        Err(e) => return Err(e).context("reading the index header row"),
    };
    let Some(row) = row else {
        bail!(
            "the database has no index {name:?} (no row in inferd_index): build it with \
             `inferd index build --out postgresql://… --name {name}`"
        );
    };
    let format: i32 = row.get(0);
    ensure!(
        format as u32 == FORMAT_VERSION,
        "index {name:?} has format {format}, this inferd reads {FORMAT_VERSION}"
    );
    let search = match row.get::<_, &str>(5) {
        "exact" => Search::Exact,
        _ => Search::Hnsw,
    };
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {}", items_table(name)?), &[])
        .await?
        .get(0);
    Ok(IndexHeader {
        format: format as u32,
        model: row.get(1),
        model_version: row.get(2),
        model_sha256: row.get(3),
        dimensions: row.get::<_, i32>(4) as usize,
        count: count as usize,
        search,
        created_unix: row.get::<_, i64>(6) as u64,
    })
}

/// Connects one client for a build (its connection task runs in the background).
async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(%err, "postgres connection ended");
        }
    });
    Ok(client)
}

/// Loads `items` (id, metadata object, unit vector) as index `name` and publishes it.
pub async fn publish(
    url: &str,
    name: &str,
    header: &IndexHeader,
    items: impl Iterator<Item = (String, Value, Vec<f32>)>,
) -> anyhow::Result<usize> {
    let mut client = connect(url).await?;
    let dim = header.dimensions;
    let (table, staging) = (table_name(name, "")?, table_name(name, "_new")?);
    client
        .batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS vector;
             CREATE TABLE IF NOT EXISTS inferd_index (
                 name text PRIMARY KEY, format int NOT NULL, model text NOT NULL,
                 model_version text NOT NULL, model_sha256 text NOT NULL, dimensions int NOT NULL,
                 search text NOT NULL, created_unix bigint NOT NULL);
             DROP TABLE IF EXISTS \"{staging}\";
             CREATE TABLE \"{staging}\" (id text PRIMARY KEY, metadata jsonb NOT NULL,
                 embedding vector({dim}) NOT NULL);"
        ))
        .await
        .context("creating the index tables (is the pgvector extension installed?)")?;
    let insert = format!(
        "INSERT INTO \"{staging}\" (id, metadata, embedding) \
         SELECT i, m, e::vector FROM unnest($1::text[], $2::jsonb[], $3::text[]) AS u(i, m, e)"
    );
    let mut count = 0;
    let mut batch: (Vec<String>, Vec<Value>, Vec<String>) = Default::default();
    let mut items = items.peekable();
    while items.peek().is_some() {
        for (id, metadata, vector) in items.by_ref().take(BATCH) {
            batch.0.push(id);
            batch.1.push(metadata);
            batch.2.push(vector_text(&vector));
        }
        count += batch.0.len();
        client
            .execute(&insert, &[&batch.0, &batch.1, &batch.2])
            .await
            .context("loading items")?;
        batch = Default::default();
    }
    tracing::info!(
        items = count,
        "items loaded; building the pgvector HNSW index"
    );
    client
        .batch_execute(&format!(
            "SET maintenance_work_mem = '512MB';
             CREATE INDEX ON \"{staging}\" USING hnsw (embedding vector_cosine_ops)
                 WITH (m = {}, ef_construction = {});
             ANALYZE \"{staging}\";",
            graph::M,
            graph::EF_CONSTRUCTION
        ))
        .await
        .context("building the HNSW index")?;
    let tx = client.transaction().await?;
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS \"{table}\"; ALTER TABLE \"{staging}\" RENAME TO \"{table}\";"
    ))
    .await?;
    let search = match header.search {
        Search::Exact => "exact",
        Search::Hnsw => "hnsw",
    };
    tx.execute(
        "INSERT INTO inferd_index (name, format, model, model_version, model_sha256, dimensions, \
         search, created_unix) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (name) DO UPDATE SET format = EXCLUDED.format, model = EXCLUDED.model, \
         model_version = EXCLUDED.model_version, model_sha256 = EXCLUDED.model_sha256, \
         dimensions = EXCLUDED.dimensions, search = EXCLUDED.search, \
         created_unix = EXCLUDED.created_unix",
        &[
            &name,
            &(header.format as i32),
            &header.model,
            &header.model_version,
            &header.model_sha256,
            &(dim as i32),
            &search,
            &(header.created_unix as i64),
        ],
    )
    .await?;
    tx.commit().await.context("publishing the index")?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_and_names_checked() {
        assert_eq!(
            redact("postgresql://app:s3cret@db.svc:5432/items?sslmode=disable"),
            "postgresql://app:***@db.svc:5432/items"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert!(is_url("postgresql://h/d") && !is_url("/data/index"));
        assert_eq!(
            items_table("debian-1").unwrap(),
            "\"inferd_items_debian-1\""
        );
        assert!(items_table("a\"; drop").is_err());
        assert!(items_table("").is_err());
        let v = [0.5, -1.25, 3e-8];
        assert_eq!(parse_vector(&vector_text(&v)).unwrap(), v);
    }
}
