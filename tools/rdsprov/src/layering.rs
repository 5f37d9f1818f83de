//! The module graph of rdsprov's own source, read from the files: which module refers to
//! which (`crate::…`, `super::…`, a parent naming its child). The tests hold the layering
//! README promises: no import circle anywhere, and the AWS steps running one way, observe →
//! plan → apply.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// `aws/target/instance.rs` → `crate::aws::target::instance`.
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "main") {
        parts.pop();
    }
    std::iter::once("crate".to_string())
        .chain(parts)
        .collect::<Vec<_>>()
        .join("::")
}

fn sources(dir: &Path, root: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, root, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Code only: no comments, no unit tests (their `super` is the file's own module).
            let code: String = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            found.push((module_of(path.strip_prefix(root).unwrap()), code));
        }
    }
}

/// The longest known module that `path` (a `::` path) starts with.
fn resolve(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

fn graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let path = regex_lite_paths();
    let mut graph = Graph::new();
    for (module, code) in &files {
        let parent = module.rsplit_once("::").map_or("crate", |(p, _)| p);
        let mut edges = BTreeSet::new();
        for (start, items) in path(code) {
            let base = match start.split_once("::") {
                Some(("super", rest)) => format!("{parent}::{rest}"),
                _ if start == "super" => parent.to_string(),
                _ if start.starts_with("crate") => start.clone(),
                // A module naming one of its own children.
                _ => format!("{module}::{start}"),
            };
            let targets: Vec<String> = if items.is_empty() {
                vec![base.clone()]
            } else {
                items.iter().map(|item| format!("{base}::{item}")).collect()
            };
            for target in targets {
                if let Some(found) = resolve(&target, &modules) {
                    if &found != module && found != "crate" {
                        edges.insert(found);
                    }
                }
            }
        }
        graph.insert(module.clone(), edges);
    }
    graph
}

/// Every `a::b::c` path in `code` that starts at `crate`, `super` or a plain name, with the
/// items of a `{…}` group after it (one level).
fn regex_lite_paths() -> impl Fn(&str) -> Vec<(String, Vec<String>)> {
    |code: &str| {
        let bytes = code.as_bytes();
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let mut found = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let starts_word =
                word(bytes[i]) && (i == 0 || !(word(bytes[i - 1]) || bytes[i - 1] == b':'));
            if !starts_word {
                i += 1;
                continue;
            }
            let mut j = i;
            let mut segments = Vec::new();
            loop {
                let begin = j;
                while j < bytes.len() && word(bytes[j]) {
                    j += 1;
                }
                segments.push(&code[begin..j]);
                if code[j..].starts_with("::") && bytes.get(j + 2).is_some_and(|&c| word(c)) {
                    j += 2;
                } else {
                    break;
                }
            }
            let mut items = Vec::new();
            if code[j..].starts_with("::{") {
                let close = code[j..].find('}').map_or(code.len(), |at| j + at);
                items = code[j + 3..close]
                    .split(',')
                    .map(|item| item.trim().split("::").next().unwrap_or("").to_string())
                    .filter(|item| !item.is_empty() && item != "self")
                    .collect();
                j = close;
            }
            if segments.len() > 1 || !items.is_empty() {
                found.push((segments.join("::"), items));
            }
            i = j.max(i + 1);
        }
        found
    }
}

/// A module that reaches itself again, with the way round; None when there is no circle.
fn circle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut round = path[at..].to_vec();
            round.push(node.to_string());
            return Some(round);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(round) = visit(next, graph, path, done) {
                return Some(round);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// Whether `from` refers to `to`, directly or through others.
fn reaches(graph: &Graph, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(node) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn the_checker_sees_edges_and_circles() {
    let paths = regex_lite_paths()(
        "use crate::aws::{apply, observe::SPEC_RULE, Aws};\nlet x = super::common::read(a::b);",
    );
    assert_eq!(
        paths,
        vec![
            (
                "crate::aws".to_string(),
                vec![
                    "apply".to_string(),
                    "observe".to_string(),
                    "Aws".to_string()
                ]
            ),
            ("super::common::read".to_string(), Vec::new()),
            ("a::b".to_string(), Vec::new()),
        ]
    );
    let graph = graph();
    assert!(graph["crate::aws::apply"].contains("crate::aws::observe"));
    assert!(graph["crate::commands"].contains("crate::commands::apply"));
    assert!(graph["crate::commands::apply"].contains("crate::commands::common"));
    let mut looped = graph.clone();
    looped
        .get_mut("crate::aws::observe")
        .unwrap()
        .insert("crate::aws::apply".into());
    let round = circle(&looped).expect("a planted circle is found");
    assert!(
        round.contains(&"crate::aws::apply".to_string()),
        "{round:?}"
    );
}

#[test]
fn no_module_imports_in_a_circle() {
    let graph = graph();
    assert!(
        graph.len() > 30,
        "read the whole source: {:?}",
        graph.keys()
    );
    if let Some(round) = circle(&graph) {
        panic!("an import circle: {}", round.join(" → "));
    }
}

#[test]
fn the_aws_steps_run_one_way() {
    let graph = graph();
    let step = |name: &str| format!("crate::aws::{name}");
    for (from, never) in [
        ("observe", ["plan", "apply"]),
        ("plan", ["observe", "apply"]),
        ("attributes", ["observe", "plan"]),
        ("target", ["observe", "plan"]),
    ] {
        for to in never {
            assert!(
                !reaches(&graph, &step(from), &step(to)),
                "aws::{from} must not reach aws::{to}"
            );
        }
    }
    // The plan is pure: no AWS call in it.
    let plan =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/aws/plan.rs"))
            .unwrap();
    for call in ["block_on", ".send()", "aws.", "Aws"] {
        assert!(!plan.contains(call), "aws::plan makes AWS calls ({call})");
    }
}
