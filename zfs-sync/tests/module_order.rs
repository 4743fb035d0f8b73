//! The core's modules form a strict order, lowest first; no module uses one later in it:
//!
//! `error` → `names` → `filter`, `resume`, `signature` → `model` → `inventory` → `compare` → `plan` →
//! `conflict`, `retention` → `command` → `store` → `service`
//!
//! (`testing`, the test support, sits above all of them.) This test reads the crate's sources
//! and fails on any `crate::<module>` path that points later in the order, so a cycle such as
//! the old `compare` ↔ `plan` cannot come back unnoticed.

use std::path::Path;

const ORDER: &[&[&str]] = &[
    &["error"],
    &["names"],
    &["filter", "resume", "signature"],
    &["model"],
    &["inventory"],
    &["compare"],
    &["plan"],
    &["conflict", "retention"],
    &["command"],
    &["store"],
    &["service"],
    &["testing"],
];

fn rank(module: &str) -> Option<usize> {
    ORDER.iter().position(|level| level.contains(&module))
}

/// The top-level modules a source names as `crate::m`, `crate::{m, …}` (comments removed).
fn uses(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                out.push(name.to_string());
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push(rest[..end].to_string());
        }
    }
    out
}

// Reads the crate's own sources: a test may touch files, the core may not.
#[allow(clippy::disallowed_methods)]
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
#[allow(clippy::disallowed_methods)] // reads the sources, see `sources`
fn no_module_uses_a_later_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .iter()
            .next()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs");
        if top == "lib" {
            continue;
        }
        let own = rank(top).unwrap_or_else(|| panic!("{top} (from {rel:?}) is not in ORDER"));
        for used in uses(&std::fs::read_to_string(file).unwrap()) {
            // `crate::Error` and `crate::Result` are `error`'s, re-exported at the root.
            let used = match used.as_str() {
                "Error" | "Result" => "error",
                "conformance_tests" | "for_each_conformance_behaviour" => "store",
                other => other,
            };
            let Some(r) = rank(used) else {
                violations.push(format!("{rel:?} uses crate::{used}, which is not in ORDER"));
                continue;
            };
            if r > own && used != "testing" {
                violations.push(format!(
                    "{rel:?} ({top}) uses crate::{used}, later in the order"
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
