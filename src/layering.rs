//! The crate's layering, checked on every `cargo test`: each top-level module may import only
//! the modules listed for it below (the ones beneath it), and the leaves import nothing from the
//! crate. In the style of `every_flag_has_an_env_var`: a table, and a test that reads the code.
//!
//! It scans `src/**` for `crate::<top>` paths (plain, and inside `use crate::{...}` groups) and
//! for `super::` chains that climb out of their top-level module, tests and comments included
//! except comments. A new top-level module must be given its place in [`LAYERS`].

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Each top-level module and what it may import. `model` includes its kernels (one layer until
/// the kernels become their own crate). `index` sits beside `deploy`: neither imports the other.
/// `jobs` (batch jobs) sits above `deploy`: it routes batches and runs them through the one
/// embedding path, and `http` serves its API.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "app",
        &[
            "cli",
            "http",
            "grpc",
            "jobs",
            "deploy",
            "index",
            "serving",
            "batching",
            "model",
            "auth",
            "telemetry",
            "journal",
        ],
    ),
    ("cli", &["index", "model", "telemetry"]),
    (
        "http",
        &[
            "jobs",
            "deploy",
            "index",
            "serving",
            "batching",
            "model",
            "auth",
            "telemetry",
        ],
    ),
    // gRPC sits beside http (neither imports the other): app hands it what it shares.
    (
        "grpc",
        &[
            "deploy",
            "serving",
            "batching",
            "model",
            "auth",
            "telemetry",
        ],
    ),
    (
        "jobs",
        &[
            "deploy",
            "serving",
            "batching",
            "model",
            "telemetry",
            "journal",
        ],
    ),
    (
        "deploy",
        &["serving", "batching", "model", "telemetry", "journal"],
    ),
    (
        "index",
        &["serving", "batching", "model", "telemetry", "journal"],
    ),
    ("serving", &["batching", "model", "telemetry"]),
    ("batching", &["model", "telemetry"]),
    ("model", &["telemetry"]),
    // Leaves: everyone may use them; they import nothing from the crate.
    ("auth", &[]),
    ("telemetry", &[]),
    ("journal", &[]),
    ("allocator", &[]),
];

/// Files the scan skips: the crate root (it only declares modules) and this checker, whose
/// test inputs are deliberate violations.
const SKIPPED: &[&str] = &["lib.rs", "main.rs", "layering.rs"];

fn allowed(top: &str) -> Option<&'static [&'static str]> {
    LAYERS.iter().find(|(t, _)| *t == top).map(|(_, a)| *a)
}

/// The top-level modules `code` names, for a file of module path `module` (e.g.
/// `["http", "native", "infer"]`): `crate::x` heads, and `super::` chains reaching the root.
fn imports(module: &[&str], code: &str) -> BTreeSet<String> {
    let code = strip_comments(code);
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = find_path_start(rest, "crate::") {
        rest = &rest[at + "crate::".len()..];
        heads(rest, &mut found);
    }
    let mut rest = code.as_str();
    while let Some(at) = find_path_start(rest, "super::") {
        let mut tail = &rest[at..];
        let mut depth = 0;
        while let Some(after) = tail.strip_prefix("super::") {
            depth += 1;
            tail = after;
        }
        if depth >= module.len() {
            heads(tail, &mut found);
        }
        rest = &rest[at + depth * "super::".len()..];
    }
    found
}

/// `needle` where it starts a path (not in the middle of an identifier like `my_crate::`).
fn find_path_start(text: &str, needle: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(needle) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            return Some(at);
        }
        from = at + needle.len();
    }
    None
}

/// The leading identifiers of a path tail: `x::...` gives `x`; `{a::b, c}` gives `a` and `c`.
fn heads(tail: &str, found: &mut BTreeSet<String>) {
    let Some(group) = tail.strip_prefix('{') else {
        found.insert(ident(tail).to_string());
        return;
    };
    let (mut depth, mut start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                found.insert(ident(group[start..i].trim_start()).to_string());
                return;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                found.insert(ident(group[start..i].trim_start()).to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
}

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

fn strip_comments(code: &str) -> String {
    code.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What is wrong with one file of top-level module `module[0]`: each import not allowed.
fn violations(module: &[&str], code: &str) -> Vec<String> {
    let top = module[0];
    let Some(allowed) = allowed(top) else {
        return vec![format!("`{top}` has no place in LAYERS")];
    };
    let tops: BTreeSet<&str> = LAYERS.iter().map(|(t, _)| *t).collect();
    imports(module, code)
        .into_iter()
        .filter(|name| name != top && tops.contains(name.as_str()))
        .filter(|name| !allowed.contains(&name.as_str()))
        .map(|name| format!("`{top}` imports `{name}`, which is not below it"))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src/") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/http/native/infer.rs` → `["http", "native", "infer"]`; `mod.rs` names its folder.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

#[test]
fn every_module_imports_only_what_is_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src/");
        if SKIPPED.iter().any(|s| relative == Path::new(s)) {
            continue;
        }
        let module = module_path(relative);
        let module: Vec<&str> = module.iter().map(String::as_str).collect();
        seen.insert(module[0].to_string());
        let code = std::fs::read_to_string(&file).expect("readable source");
        let found = violations(&module, &code);
        if !found.is_empty() {
            problems.insert(relative.display().to_string(), found);
        }
    }
    assert!(problems.is_empty(), "layering violations: {problems:#?}");
    let placed: BTreeSet<String> = LAYERS.iter().map(|(t, _)| t.to_string()).collect();
    assert_eq!(
        seen, placed,
        "the scan must read every module in LAYERS, and only those"
    );
}

#[test]
fn the_table_itself_has_no_cycle_and_leaves_stay_leaves() {
    // Depth-first over "may import": a cycle would let two modules import each other.
    fn visit(top: &str, path: &mut Vec<String>) {
        assert!(
            !path.iter().any(|p| p == top),
            "cycle in LAYERS: {path:?} → {top}"
        );
        path.push(top.to_string());
        for below in allowed(top).expect("every entry is a module") {
            visit(below, path);
        }
        path.pop();
    }
    for (top, _) in LAYERS {
        visit(top, &mut Vec::new());
    }
    assert_eq!(allowed("auth"), Some(&[][..]));
    assert_eq!(allowed("telemetry"), Some(&[][..]));
    assert_eq!(allowed("journal"), Some(&[][..]));
}

#[test]
fn the_check_is_sharp() {
    // A back-edge, plain and grouped.
    assert_eq!(
        violations(&["serving", "cache"], "use crate::http::error::ApiError;").len(),
        1
    );
    let grouped =
        "use crate::{\n    model::tokenizer::Truncation,\n    deploy::{Role, Routed},\n};";
    assert_eq!(
        violations(&["batching", "worker"], grouped),
        ["`batching` imports `deploy`, which is not below it"]
    );
    // A leaf importing anything; siblings importing each other.
    assert_eq!(
        violations(&["telemetry"], "fn f(_: &crate::model::ModelInfo) {}").len(),
        1
    );
    assert_eq!(
        violations(&["index", "build"], "use crate::deploy::Registry;").len(),
        1
    );
    // Climbing out with `super::` reaches the crate root too.
    let escape = "use super::super::http::state::AppState;";
    assert_eq!(violations(&["deploy", "ops"], escape).len(), 1);
    assert!(violations(&["deploy", "ops", "load"], escape).is_empty());
    // Allowed edges, comments and look-alike paths are not violations.
    let fine =
        "use crate::{serving::ModelHandle, telemetry};\n// crate::http::x\nuse my_crate::http;";
    assert!(violations(&["deploy", "registry"], fine).is_empty());
    // A module nobody placed.
    assert_eq!(violations(&["gateway"], "").len(), 1);
}
