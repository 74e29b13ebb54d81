//! A shared index in PostgreSQL with pgvector: every replica reads and writes the same table.
//!
//! One table per index, `inferd_items_<name>` (`id text primary key`, `metadata jsonb`,
//! `embedding vector(d)`), with a pgvector HNSW index (`vector_cosine_ops`, M 16,
//! ef_construction 100), and one row per index in `inferd_index` naming the model that built
//! it: the server checks it at start exactly like a directory index's header and refuses other
//! weights. Vectors are stored as f32 `vector`, not `halfvec`: halfvec needs pgvector 0.7 and
//! the pgvector the tests run (PyPI `pgserver`, 0.6.2) lacks it.
//!
//! Queries: `ORDER BY embedding <=> q LIMIT k` (score `1 − distance`, the cosine similarity of
//! unit vectors); `ef_search` is `SET LOCAL hnsw.ef_search` (pgvector's cap: 1000); `exact`
//! disables index scans for the transaction, so Postgres scans every row; filters are
//! `metadata -> field = ANY(values)`. pgvector 0.6 filters after the index scan, so like the
//! embedded index a filtered query short of `k` is re-run exactly. Writes are single
//! statements, so each is its own transaction, durable when acknowledged.
//!
//! Connections come from a bounded pool (deadpool) whose waits, connects and checks all time
//! out; any connection failure is [`IndexError::Unreachable`] (503 `index_unavailable`), and a
//! monitor pings the database so readiness can follow it.

pub mod schema;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio_postgres::{types::ToSql, NoTls};

use super::{
    backend::SearchRequest, error::IndexError, graph::EF_SEARCH, live::Found, store::Metadata,
    wal::WalRecord, IndexHeader,
};

/// pgvector's largest `hnsw.ef_search`.
pub const EF_SEARCH_CAP: usize = 1000;

/// Pool size and timeouts of a Postgres index.
#[derive(Debug, Clone, Copy)]
pub struct PgSettings {
    pub pool_size: usize,
    /// Bounds connecting, waiting for a pooled connection, and each operation.
    pub timeout: Duration,
}

/// One served Postgres index.
pub struct PgIndex {
    pub name: String,
    pub header: IndexHeader,
    table: String,
    pool: Pool,
    timeout: Duration,
    available: AtomicBool,
}

impl PgIndex {
    /// Connects, reads the index's header row and lets `check` refuse it before serving.
    pub async fn open(
        name: &str,
        url: &str,
        settings: PgSettings,
        check: impl FnOnce(&IndexHeader) -> anyhow::Result<()>,
    ) -> anyhow::Result<Arc<Self>> {
        let pool = pool(url, settings)?;
        let client = pool
            .get()
            .await
            .map_err(|e| anyhow::anyhow!("connecting to {}: {e}", schema::redact(url)))?;
        let header = schema::read_header(&**client, name).await?;
        check(&header)?;
        drop(client);
        let index = Arc::new(Self {
            name: name.to_string(),
            header,
            table: schema::items_table(name)?,
            pool,
            timeout: settings.timeout,
            available: AtomicBool::new(true),
        });
        tracing::info!(index = name, url = %schema::redact(url), "postgres index connected");
        index.start_monitor();
        Ok(index)
    }

    /// Whether the last contact with the database succeeded.
    pub fn available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    /// Pings the database every second while the index is in use, so readiness follows it.
    fn start_monitor(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(index) = weak.upgrade() else { return };
                let was = index.available();
                let ok = index
                    .run(|c| async move { c.simple_query("SELECT 1").await.map(drop) })
                    .await
                    .is_ok();
                if was && !ok {
                    tracing::warn!(index = %index.name, "postgres index unreachable");
                } else if !was && ok {
                    tracing::info!(index = %index.name, "postgres index reachable again");
                }
            }
        });
    }

    /// Runs `op` on a pooled connection within the timeout, recording availability.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, IndexError>
    where
        F: FnOnce(deadpool_postgres::Object) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let attempt = async {
            let client = self.pool.get().await.map_err(|e| {
                IndexError::Unreachable(format!("index {:?}: postgres unreachable: {e}", self.name))
            })?;
            op(client).await.map_err(|e| self.classify(e))
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(IndexError::Unreachable(format!(
                "index {:?}: postgres did not answer within {:?}",
                self.name, self.timeout
            ))),
        };
        let down = matches!(result, Err(IndexError::Unreachable(_)));
        self.available.store(!down, Ordering::Release);
        result
    }

    /// Connection-level failures (closed sockets, server shutting down) are `Unavailable`;
    /// errors the server raised for a statement are faults.
    fn classify(&self, err: tokio_postgres::Error) -> IndexError {
        let unavailable = match err.as_db_error() {
            None => true,
            Some(db) => {
                let class = &db.code().code()[..2];
                class == "08" || class == "57" || class == "53"
            }
        };
        if unavailable {
            IndexError::Unreachable(format!(
                "index {:?}: postgres unavailable: {err}",
                self.name
            ))
        } else {
            IndexError::Internal(format!("index {:?}: {err:?}", self.name))
        }
    }

    /// The stored vector and metadata of `id`.
    pub async fn item(&self, id: &str) -> Result<Option<(Vec<f32>, Metadata)>, IndexError> {
        let sql = format!(
            "SELECT metadata, embedding::text FROM {} WHERE id = $1",
            self.table
        );
        let row = self
            .run(|c| async move { c.query_opt(&sql, &[&id]).await })
            .await?;
        row.map(|row| {
            let metadata: Value = row.get(0);
            let vector = schema::parse_vector(row.get(1)).map_err(IndexError::internal)?;
            Ok((vector, object(metadata)))
        })
        .transpose()
    }

    /// Live items (a count over the table).
    pub async fn count(&self) -> Result<usize, IndexError> {
        let sql = format!("SELECT count(*) FROM {}", self.table);
        let row = self
            .run(|c| async move { c.query_one(&sql, &[]).await })
            .await?;
        Ok(row.get::<_, i64>(0) as usize)
    }

    /// Adds or replaces an item in one statement; returns whether it existed.
    pub async fn write(&self, record: WalRecord) -> Result<bool, IndexError> {
        match record {
            WalRecord::Upsert {
                id,
                metadata,
                vector,
            } => {
                let sql = format!(
                    "INSERT INTO {} (id, metadata, embedding) VALUES ($1, $2, $3::text::vector) \
                     ON CONFLICT (id) DO UPDATE SET metadata = EXCLUDED.metadata, \
                     embedding = EXCLUDED.embedding RETURNING (xmax <> 0)",
                    self.table
                );
                let metadata = Value::Object(metadata);
                let vector = schema::vector_text(&vector);
                let row = self
                    .run(|c| async move { c.query_one(&sql, &[&id, &metadata, &vector]).await })
                    .await?;
                Ok(row.get::<_, bool>(0))
            }
            WalRecord::Delete { id } => {
                let sql = format!("DELETE FROM {} WHERE id = $1", self.table);
                let n = self
                    .run(|c| async move { c.execute(&sql, &[&id]).await })
                    .await?;
                Ok(n > 0)
            }
        }
    }

    /// The `k` best items; a filtered graph query short of `k` is re-run exactly.
    pub async fn search(&self, req: &SearchRequest) -> Result<Vec<Found>, IndexError> {
        let found = self.query(req, req.exact).await?;
        let narrowed = !req.filter.is_empty() || !req.exclude.is_empty();
        if !req.exact && narrowed && found.len() < req.k {
            return self.query(req, true).await;
        }
        Ok(found)
    }

    async fn query(&self, req: &SearchRequest, exact: bool) -> Result<Vec<Found>, IndexError> {
        let vector = schema::vector_text(&req.vector);
        let exclude: Vec<String> = req.exclude.iter().cloned().collect();
        let k = req.k as i64;
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> =
            vec![Box::new(vector), Box::new(exclude), Box::new(k)];
        let mut clauses = vec!["NOT (id = ANY($2))".to_string()];
        for (field, allowed) in &req.filter.0 {
            params.push(Box::new(field.clone()));
            params.push(Box::new(allowed.clone()));
            let n = params.len();
            clauses.push(format!(
                "metadata -> (${}::text) = ANY(${}::jsonb[])",
                n - 1,
                n
            ));
        }
        let sql = format!(
            "SELECT id, metadata, (1 - (embedding <=> $1::text::vector))::float4 FROM {} \
             WHERE {} ORDER BY embedding <=> $1::text::vector LIMIT $3",
            self.table,
            clauses.join(" AND ")
        );
        let settings = if exact {
            "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off".to_string()
        } else {
            let ef = req
                .ef_search
                .unwrap_or(EF_SEARCH)
                .max(req.k)
                .min(EF_SEARCH_CAP);
            format!("SET LOCAL hnsw.ef_search = {ef}")
        };
        let rows = self
            .run(|mut c| async move {
                let tx = c.transaction().await?;
                tx.batch_execute(&settings).await?;
                let refs: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                let rows = tx.query(&sql, &refs).await?;
                tx.commit().await?;
                Ok(rows)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| Found {
                id: row.get(0),
                metadata: object(row.get(1)),
                score: row.get(2),
            })
            .collect())
    }
}

fn object(value: Value) -> Metadata {
    match value {
        Value::Object(map) => map,
        _ => Metadata::new(),
    }
}

fn pool(url: &str, settings: PgSettings) -> anyhow::Result<Pool> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| anyhow::anyhow!("{} is not a PostgreSQL URL: {e}", schema::redact(url)))?;
    config.connect_timeout(settings.timeout);
    if config.get_application_name().is_none() {
        config.application_name("inferd");
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(settings.pool_size.max(1))
        .wait_timeout(Some(settings.timeout))
        .create_timeout(Some(settings.timeout))
        .recycle_timeout(Some(settings.timeout))
        .runtime(Runtime::Tokio1)
        .build()?)
}
