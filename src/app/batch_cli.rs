//! `inferd batch submit|status|wait|download`, a client of a running server's Batch API, and
//! `inferd embed`, which runs a batch input file through the same batch machinery (journal,
//! chunks, background priority, output format) on a local model, without a server.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::{io::AsyncWriteExt, sync::watch};

use crate::{
    cli::{BatchCommand, EmbedConfig, OutputArgs, ServerArgs, SubmitArgs},
    deploy::Registry,
    http::openai::{OpenAiOptions, TokenIds},
    jobs::{self, runner, Batch, Jobs, JobsConfig, NewBatch},
    model,
    serving::{HandleConfig, ModelHandle},
    telemetry::{self, LogFormat, Progress},
};

/// How long `inferd embed` lets background work fill a forward batch: there is no
/// interactive traffic to protect, so batches fill completely.
const OFFLINE_BACKGROUND_BUDGET: Duration = Duration::from_secs(3600);

/// `inferd batch …`.
pub fn batch(command: BatchCommand) -> anyhow::Result<()> {
    telemetry::init_stderr_tracing(LogFormat::Text);
    tokio::runtime::Runtime::new()?.block_on(async move {
        match command {
            BatchCommand::Submit(args) => submit(*args).await,
            BatchCommand::Status { server, id } => {
                print_json(&Client::new(&server)?.batch(&id).await?);
                Ok(())
            }
            BatchCommand::Wait { server, id, poll } => {
                let batch = Client::new(&server)?.wait(&id, poll).await?;
                print_json(&batch);
                ended_well(&batch)
            }
            BatchCommand::Download { server, id, files } => {
                let client = Client::new(&server)?;
                let batch = client.batch(&id).await?;
                client.download(&batch, &files).await
            }
        }
    })
}

async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let file = client.upload(&args.input).await?;
    let body = json!({
        "input_file_id": file["id"],
        "endpoint": args.endpoint,
        "completion_window": args.completion_window,
    });
    let batch = client
        .send(client.http.post(client.url("/v1/batches")).json(&body))
        .await?;
    let Some(output) = args.output.filter(|_| args.wait) else {
        print_json(&batch);
        return Ok(());
    };
    let id = batch["id"]
        .as_str()
        .context("the server's batch has no id")?;
    let batch = client.wait(id, args.poll).await?;
    let files = OutputArgs {
        output,
        errors: args.errors,
    };
    client.download(&batch, &files).await?;
    print_json(&batch);
    ended_well(&batch)
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON prints")
    );
}

/// Non-zero exit unless the batch completed.
fn ended_well(batch: &Value) -> anyhow::Result<()> {
    match batch["status"].as_str() {
        Some("completed") => Ok(()),
        status => bail!("batch {} ended {status:?}", batch["id"]),
    }
}

/// A client of the Batch API.
struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    fn new(server: &ServerArgs) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?,
            base: server.server.trim_end_matches('/').to_string(),
            key: server.api_key.clone(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; a non-2xx answer is an error carrying the server's message.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = self.authorized(request).send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("(no message)");
            bail!("the server answered {status}: {message}");
        }
        Ok(body)
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    async fn upload(&self, path: &Path) -> anyhow::Result<Value> {
        let bytes = tokio::fs::read(path)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let form = reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name),
            );
        self.send(self.http.post(self.url("/v1/files")).multipart(form))
            .await
    }

    async fn batch(&self, id: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(&format!("/v1/batches/{id}"))))
            .await
    }

    /// Polls until the batch ends, drawing its progress.
    async fn wait(&self, id: &str, poll: Duration) -> anyhow::Result<Value> {
        let mut batch = self.batch(id).await?;
        let total = batch["request_counts"]["total"].as_u64().unwrap_or(0);
        let progress = Progress::new(total, "batch requests");
        loop {
            let counts = &batch["request_counts"];
            let done =
                counts["completed"].as_u64().unwrap_or(0) + counts["failed"].as_u64().unwrap_or(0);
            progress.set(done);
            let status = batch["status"].as_str().unwrap_or("");
            if matches!(status, "completed" | "failed" | "cancelled" | "expired") {
                progress.finish();
                return Ok(batch);
            }
            tokio::time::sleep(poll).await;
            batch = self.batch(id).await?;
        }
    }

    /// Saves the batch's output and error files (an absent one is reported, not written).
    async fn download(&self, batch: &Value, files: &OutputArgs) -> anyhow::Result<()> {
        for (field, path) in [
            ("output_file_id", files.output.clone()),
            ("error_file_id", files.errors_path()),
        ] {
            match batch[field].as_str() {
                Some(id) => {
                    self.save(id, &path).await?;
                    eprintln!("{field} {id} saved to {}", path.display());
                }
                None => eprintln!("the batch has no {field}"),
            }
        }
        Ok(())
    }

    async fn save(&self, file_id: &str, path: &Path) -> anyhow::Result<()> {
        let url = self.url(&format!("/v1/files/{file_id}/content"));
        let mut response = self.authorized(self.http.get(url)).send().await?;
        if !response.status().is_success() {
            bail!(
                "downloading {file_id}: the server answered {}",
                response.status()
            );
        }
        let mut out = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        while let Some(chunk) = response.chunk().await? {
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        Ok(())
    }
}

/// `inferd embed`: the batch machinery on a local model.
pub fn embed(config: EmbedConfig) -> anyhow::Result<()> {
    telemetry::init_stderr_tracing(config.run.log_format);
    super::commands::set_threads(config.run.threads);
    tokio::runtime::Runtime::new()?.block_on(embed_local(config))
}

async fn embed_local(config: EmbedConfig) -> anyhow::Result<()> {
    let (dir, temporary) = match &config.state_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(jobs::types::new_id("inferd-embed-")),
            true,
        ),
    };
    let opts = config.load.load_options();
    let handle_config = HandleConfig {
        background_budget: OFFLINE_BACKGROUND_BUDGET,
        ..super::wiring::offline_handle_config(&config.run)
    };
    let handle = tokio::task::spawn_blocking(move || {
        let loaded =
            model::load(&opts).with_context(|| format!("loading model {:?}", opts.source))?;
        ModelHandle::start(loaded, handle_config)
    })
    .await
    .context("model loader panicked")??;
    let registry = Arc::new(Registry::default());
    registry.insert(handle);
    let jobs_config = JobsConfig {
        max_file_bytes: u64::MAX,
        max_requests: config.batch_max_requests,
        chunk_requests: config.batch_chunk_requests,
        workers: config.batch_workers,
        claim_timeout: Duration::from_secs(30),
        webhooks: None,
    };
    let endpoints = super::wiring::batch_endpoints_for(OpenAiOptions {
        max_client_batch: config.max_client_batch,
        auto_truncate: true,
        token_ids: TokenIds::Tiktoken,
    });
    let jobs = Jobs::open(&dir, None, jobs_config, endpoints).await?;
    let id = resume_or_submit(&jobs, &config.input).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = runner::spawn(Arc::clone(&jobs), registry, stop_rx)?;
    let batch = follow(&jobs, &id).await?;
    let _ = stop_tx.send(true);
    drop(workers);
    for (file, path) in [
        (&batch.output_file_id, config.files.output.clone()),
        (&batch.error_file_id, config.files.errors_path()),
    ] {
        if let Some(file) = file {
            tokio::fs::copy(jobs.file_content(file).await?, &path)
                .await
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let counts = batch.request_counts;
    println!(
        "{}: {} requests, {} completed, {} failed; output {}",
        batch.status.as_str(),
        counts.total,
        counts.completed,
        counts.failed,
        config.files.output.display()
    );
    if temporary {
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
    Ok(())
}

/// The unfinished run of `input` in the state dir, or a new batch over it.
async fn resume_or_submit(jobs: &Jobs, input: &Path) -> anyhow::Result<String> {
    let name = input.display().to_string();
    let (newest, _) = jobs.list_batches(None, 1).await?;
    if let Some(batch) = newest.into_iter().find(|b| !b.status.is_terminal()) {
        let file = jobs.file(&batch.input_file_id).await?;
        if file.filename != name {
            bail!(
                "the state dir holds an unfinished run of {}; finish it or use another --state-dir",
                file.filename
            );
        }
        tracing::info!(batch = %batch.id, "resuming an interrupted run");
        return Ok(batch.id);
    }
    let temp: PathBuf = jobs.upload_path();
    tokio::fs::copy(input, &temp)
        .await
        .with_context(|| format!("reading {}", input.display()))?;
    let file = jobs
        .create_file(temp, name, jobs::types::PURPOSE_BATCH)
        .await?;
    let batch = jobs
        .create_batch(NewBatch {
            input_file_id: file.id,
            endpoint: "/v1/embeddings".into(),
            completion_window: "7d".into(),
            metadata: None,
        })
        .await?;
    Ok(batch.id)
}

/// Draws the batch's progress until it ends.
async fn follow(jobs: &Jobs, id: &str) -> anyhow::Result<Batch> {
    let mut batch = jobs.batch(id).await?;
    let progress = Progress::new(batch.request_counts.total as u64, "embedding requests");
    while !batch.status.is_terminal() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        batch = jobs.batch(id).await?;
        let counts = batch.request_counts;
        progress.set((counts.completed + counts.failed) as u64);
    }
    progress.finish();
    Ok(batch)
}
