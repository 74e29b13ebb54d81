//! The store shared by replicas through Redis (`--jobs-redis redis://…`).
//!
//! - `inferd:jobs:journal` — a stream of records (the same checksummed lines as the local
//!   journal). Every replica replays it on start and then tails it, applying each record to its
//!   own [`State`] in stream order, so all replicas fold the same records in the same order and
//!   agree on who won every race. An append returns once this replica has applied it, so a
//!   client reads its own writes; [`Redis::catch_up`] waits for everything appended anywhere,
//!   for reads that must see other replicas' writes.
//! - `inferd:jobs:work` and `inferd:jobs:deliveries` — task streams read through the consumer
//!   groups `runners` and `senders`. A record and the tasks it implies are appended in one
//!   `MULTI`, so neither exists without the other. A worker holds a task until it `XACK`s it,
//!   refreshing its claim (`XCLAIM … JUSTID`) while it runs; a task idle for longer than
//!   `--jobs-claim-timeout` (its replica died) is taken over by the next `XAUTOCLAIM`.
//!
//! Chunk results and files live on the shared `--batch-dir` volume, named in the records.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use redis::{
    aio::ConnectionManager,
    streams::{StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadReply},
    Client, Value,
};
use tokio::sync::watch;

use super::{decode, encode, Lease, Queue, Task};
use crate::jobs::{
    state::{Record, State},
    JobsError,
};

const JOURNAL: &str = "inferd:jobs:journal";
const WORK: (&str, &str) = ("inferd:jobs:work", "runners");
const DELIVERIES: (&str, &str) = ("inferd:jobs:deliveries", "senders");
/// How long a blocking read waits on the server before returning empty.
const BLOCK_MS: u64 = 1000;
/// How long a command may take, blocking reads included.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an append waits for its own record to come back through the tail.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// A stream entry id, `ms-seq`, ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Pos(u64, u64);

impl Pos {
    fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }
}

pub struct Redis {
    /// Appends, acknowledgements and other short commands.
    conn: ConnectionManager,
    /// One connection per queue for its blocking reads, so they never hold up other commands.
    work: ConnectionManager,
    deliveries: ConnectionManager,
    consumer: String,
    claim_timeout: Duration,
    applied: watch::Receiver<Pos>,
}

fn storage(err: redis::RedisError) -> JobsError {
    JobsError::storage("Redis (--jobs-redis)", err)
}

async fn connect(client: &Client) -> anyhow::Result<ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    Ok(ConnectionManager::new_with_config(client.clone(), config).await?)
}

impl Redis {
    /// Connects, creates the consumer groups, replays the journal into `state` and starts
    /// tailing it.
    pub async fn open(
        url: &str,
        claim_timeout: Duration,
        state: Arc<RwLock<State>>,
    ) -> anyhow::Result<Self> {
        let client = Client::open(url)
            .map_err(|e| anyhow::anyhow!("--jobs-redis {url:?} is not a Redis URL: {e}"))?;
        let mut conn = connect(&client)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach Redis at --jobs-redis {url:?}: {e}"))?;
        for (stream, group) in [WORK, DELIVERIES] {
            let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match created {
                Err(err) if err.code() == Some("BUSYGROUP") => {}
                other => {
                    other?;
                }
            }
        }
        let last = replay(&mut conn, &state).await?;
        let (applied_tx, applied) = watch::channel(last);
        let mut tail = connect(&client).await?;
        tokio::spawn(async move { follow(&mut tail, last, &state, &applied_tx).await });
        Ok(Self {
            work: connect(&client).await?,
            deliveries: connect(&client).await?,
            conn,
            consumer: consumer_name(),
            claim_timeout,
            applied,
        })
    }

    pub fn claim_timeout(&self) -> Duration {
        self.claim_timeout
    }

    pub async fn append(&self, record: Record, tasks: Vec<Task>) -> Result<(), JobsError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XADD")
            .arg(JOURNAL)
            .arg("*")
            .arg("r")
            .arg(encode(&record));
        for task in &tasks {
            add_task(&mut pipe, task);
        }
        let ids: Vec<String> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(storage)?;
        let pos = ids.first().and_then(|id| Pos::parse(id));
        self.wait_applied(pos.unwrap_or_default()).await
    }

    pub async fn push(&self, tasks: Vec<Task>) -> Result<(), JobsError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for task in &tasks {
            add_task(&mut pipe, task);
        }
        pipe.query_async::<Vec<String>>(&mut self.conn.clone())
            .await
            .map(drop)
            .map_err(storage)
    }

    /// Waits until every record appended so far, by any replica, is applied here.
    pub async fn catch_up(&self) -> Result<(), JobsError> {
        let last: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(JOURNAL)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(storage)?;
        match last.ids.first().and_then(|e| Pos::parse(&e.id)) {
            Some(pos) => self.wait_applied(pos).await,
            None => Ok(()),
        }
    }

    async fn wait_applied(&self, pos: Pos) -> Result<(), JobsError> {
        let mut applied = self.applied.clone();
        let caught_up = tokio::time::timeout(APPLY_WAIT, applied.wait_for(|at| *at >= pos))
            .await
            .is_ok_and(|followed| followed.is_ok());
        match caught_up {
            true => Ok(()),
            false => Err(JobsError::Storage(
                "the batch journal in Redis is not being followed (is Redis reachable?)".into(),
            )),
        }
    }

    pub async fn claim(&self, queue: Queue) -> Result<Option<Lease>, JobsError> {
        let (stream, group) = names(queue);
        let mut conn = match queue {
            Queue::Work => self.work.clone(),
            Queue::Deliveries => self.deliveries.clone(),
        };
        let reclaimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(stream)
            .arg(group)
            .arg(&self.consumer)
            .arg(self.claim_timeout.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(storage)?;
        if let Some(entry) = reclaimed.claimed.into_iter().next() {
            tracing::info!(entry = %entry.id, stream, "reclaimed a task from a replica that stopped");
            return self.lease(queue, entry).await;
        }
        let fresh: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .query_async(&mut conn)
            .await
            .map_err(storage)?;
        let entry = fresh.and_then(|r| r.keys.into_iter().next()?.ids.into_iter().next());
        match entry {
            Some(entry) => self.lease(queue, entry).await,
            None => Ok(None),
        }
    }

    /// The lease of `entry`; an entry that is not a task this build knows is dropped.
    async fn lease(&self, queue: Queue, entry: StreamId) -> Result<Option<Lease>, JobsError> {
        let task = match entry.map.get("t") {
            Some(Value::BulkString(bytes)) => serde_json::from_slice::<Task>(bytes).ok(),
            _ => None,
        };
        let lease = Lease {
            task: task.clone().unwrap_or(Task::Finalize {
                batch: String::new(),
            }),
            queue,
            entry: Some(entry.id.clone()),
        };
        if task.is_none() {
            tracing::warn!(entry = %entry.id, "dropping a queue entry that is not a task");
            self.ack(&lease).await?;
            return Ok(None);
        }
        Ok(Some(lease))
    }

    pub async fn keep_alive(&self, lease: &Lease) -> Result<(), JobsError> {
        let (stream, group) = names(lease.queue);
        redis::cmd("XCLAIM")
            .arg(stream)
            .arg(group)
            .arg(&self.consumer)
            .arg(0)
            .arg(lease.entry.as_deref().unwrap_or("0-0"))
            .arg("JUSTID")
            .query_async::<Value>(&mut self.conn.clone())
            .await
            .map(drop)
            .map_err(storage)
    }

    pub async fn ack(&self, lease: &Lease) -> Result<(), JobsError> {
        let (stream, group) = names(lease.queue);
        let Some(entry) = &lease.entry else {
            return Ok(());
        };
        redis::pipe()
            .cmd("XACK")
            .arg(stream)
            .arg(group)
            .arg(entry)
            .cmd("XDEL")
            .arg(stream)
            .arg(entry)
            .query_async::<Value>(&mut self.conn.clone())
            .await
            .map(drop)
            .map_err(storage)
    }
}

fn names(queue: Queue) -> (&'static str, &'static str) {
    match queue {
        Queue::Work => WORK,
        Queue::Deliveries => DELIVERIES,
    }
}

fn add_task(pipe: &mut redis::Pipeline, task: &Task) {
    let (stream, _) = names(task.queue());
    let json = serde_json::to_string(task).expect("tasks serialise");
    pipe.cmd("XADD").arg(stream).arg("*").arg("t").arg(json);
}

/// This replica's consumer name: unique per process, readable in `XINFO CONSUMERS`.
fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "inferd".into());
    format!(
        "{host}-{}-{:06x}",
        std::process::id(),
        fastrand::u32(..0x100_0000)
    )
}

/// Applies the journal's entries to `state`; the position of the last one applied.
fn apply_entries(entries: &[StreamId], state: &RwLock<State>, last: &mut Pos) {
    let mut state = state.write().expect("jobs state lock");
    for entry in entries {
        let record = match entry.map.get("r") {
            Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes).ok().and_then(decode),
            _ => None,
        };
        match record {
            Some(record) => {
                state.apply(&record);
            }
            None => {
                tracing::error!(entry = %entry.id, "skipping an unreadable batch journal entry")
            }
        }
        if let Some(pos) = Pos::parse(&entry.id) {
            *last = pos;
        }
    }
}

/// Replays the whole journal, a page at a time.
async fn replay(conn: &mut ConnectionManager, state: &RwLock<State>) -> anyhow::Result<Pos> {
    let mut last = Pos::default();
    let mut start = "-".to_string();
    loop {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(JOURNAL)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        let Some(tail) = page.ids.last() else {
            break;
        };
        start = format!("({}", tail.id);
        apply_entries(&page.ids, state, &mut last);
    }
    tracing::info!(position = ?last, "batch journal replayed from Redis");
    Ok(last)
}

/// Tails the journal from `last`, applying what every replica appends.
async fn follow(
    conn: &mut ConnectionManager,
    mut last: Pos,
    state: &RwLock<State>,
    applied: &watch::Sender<Pos>,
) {
    let mut failures = 0u32;
    loop {
        let read: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(JOURNAL)
            .arg(format!("{}-{}", last.0, last.1))
            .query_async(conn)
            .await;
        match read {
            Ok(reply) => {
                failures = 0;
                for key in reply.map(|r| r.keys).unwrap_or_default() {
                    apply_entries(&key.ids, state, &mut last);
                }
                applied.send_replace(last);
            }
            Err(err) => {
                failures += 1;
                tracing::warn!(%err, "reading the batch journal from Redis failed; retrying");
                let backoff = Duration::from_millis(200 << failures.min(5));
                tokio::time::sleep(backoff).await;
            }
        }
        if applied.is_closed() {
            return;
        }
    }
}
