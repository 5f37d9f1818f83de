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
            found.push((
                module_of(path.strip_prefix(root).unwrap()),
                without_tests(&code_only(&text)),
            ));
        }
    }
}

/// The text with comments, string and character literals blanked out, so that only code is
/// read for paths.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        let starts = |s: &str| s.chars().zip(rest).filter(|(a, b)| a == *b).count() == s.len();
        if starts("//") {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if starts("/*") {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
            out.push(' ');
        } else if starts("r\"") || starts("r#") || starts("br\"") || starts("br#") {
            let at = if chars[i] == 'b' { i + 2 } else { i + 1 };
            let hashes = chars[at..].iter().take_while(|c| **c == '#').count();
            if chars.get(at + hashes) != Some(&'"') {
                out.push(chars[i]);
                i += 1;
                continue;
            }
            i = at + hashes + 1;
            let closing: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while i < chars.len() && !chars[i..].iter().collect::<String>().starts_with(&closing) {
                i += 1;
            }
            i += closing.chars().count();
            out.push_str("\"\"");
        } else if chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if chars[i] == '\'' && (rest.get(2) == Some(&'\'') || rest.get(1) == Some(&'\\')) {
            // A character literal ('x', '\n', '\''); a lifetime has no closing quote.
            i += if rest.get(1) == Some(&'\\') {
                rest.iter()
                    .skip(2)
                    .position(|c| *c == '\'')
                    .map_or(rest.len(), |at| at + 3)
            } else {
                3
            };
            out.push_str("' '");
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The code without its `#[cfg(test)]` items (a test module's `super` is the file's own
/// module, and tests may reach anything).
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let end = match (after.find(';'), after.find('{')) {
            (Some(semi), Some(brace)) if semi < brace => semi + 1,
            (_, Some(brace)) => {
                let mut depth = 0;
                let mut end = after.len();
                for (offset, c) in after[brace..].char_indices() {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    if depth == 0 {
                        end = brace + offset + 1;
                        break;
                    }
                }
                end
            }
            (Some(semi), None) => semi + 1,
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The full paths of a `use` tree: `a::{b, c::{d, e}, f as g, self, *}` → a::b, a::c::d,
/// a::c::e, a::f, a, a.
fn use_tree(tree: &str) -> Vec<String> {
    fn join(a: &str, b: &str) -> String {
        match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_string(),
            (_, true) => a.to_string(),
            _ => format!("{a}::{b}"),
        }
    }
    fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
        let tree = tree.trim();
        match (tree.find('{'), tree.rfind('}')) {
            (Some(open), Some(close)) => {
                let base = join(prefix, tree[..open].trim().trim_end_matches("::"));
                let inner = &tree[open + 1..close];
                let mut depth = 0;
                let mut start = 0;
                for (at, c) in inner.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            expand(&base, &inner[start..at], out);
                            start = at + 1;
                        }
                        _ => {}
                    }
                }
                expand(&base, &inner[start..], out);
            }
            _ => {
                // `name as alias`: the name is what is reached.
                match tree.split_whitespace().next().unwrap_or("") {
                    "" => {}
                    "self" | "*" => out.push(prefix.to_string()),
                    item => out.push(join(prefix, item.trim_end_matches("::*"))),
                }
            }
        }
    }
    let mut out = Vec::new();
    expand("", tree, &mut out);
    out
}

/// Every path the code names: each `use` tree expanded, and each `a::b` path elsewhere.
fn paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = String::new();
    let mut text = code;
    while let Some(at) = text.find("use ") {
        let boundary = at == 0 || !text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        rest.push_str(&text[..at]);
        let Some(end) = text[at..].find(';') else {
            text = &text[at..];
            break;
        };
        if boundary {
            found.extend(use_tree(&text[at + 4..at + end]));
        } else {
            rest.push_str(&text[at..at + end + 1]);
        }
        text = &text[at + end + 1..];
    }
    rest.push_str(text);
    let bytes = rest.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !word(bytes[i]) || (i > 0 && (word(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let mut j = i;
        loop {
            while j < bytes.len() && word(bytes[j]) {
                j += 1;
            }
            if rest[j..].starts_with("::") && bytes.get(j + 2).is_some_and(|&c| word(c)) {
                j += 2;
            } else {
                break;
            }
        }
        if rest[i..j].contains("::") {
            found.push(rest[i..j].to_string());
        }
        i = j.max(i + 1);
    }
    found
}

/// The module `path` names from `module`, if it is one of ours: `crate::…`, `super::…`
/// (any number), `self::…`, or a child's name.
fn target(module: &str, path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut base = module.to_string();
    let mut segments: Vec<&str> = path.split("::").collect();
    match segments[0] {
        "crate" => {
            base = "crate".into();
            segments.remove(0);
        }
        "self" => {
            segments.remove(0);
        }
        "super" => {
            while segments.first() == Some(&"super") {
                base = base
                    .rsplit_once("::")
                    .map_or("crate".into(), |(p, _)| p.to_string());
                segments.remove(0);
            }
        }
        _ => {}
    }
    let full = std::iter::once(base.as_str())
        .chain(segments.iter().copied())
        .collect::<Vec<_>>()
        .join("::");
    resolve(&full, modules).filter(|found| {
        // A bare name must be a child of this module: `std::…` is not ours.
        path.starts_with("crate")
            || path.starts_with("super")
            || path.starts_with("self")
            || found != module
    })
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
    let mut graph = Graph::new();
    for (module, code) in &files {
        let edges = paths(code)
            .iter()
            .filter_map(|path| target(module, path, &modules))
            .filter(|found| found != module)
            .collect();
        graph.insert(module.clone(), edges);
    }
    graph
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
    assert_eq!(
        use_tree("crate::aws::{apply, observe::{self, SPEC_RULE}, target::{On as Call}, Aws}"),
        [
            "crate::aws::apply",
            "crate::aws::observe",
            "crate::aws::observe::SPEC_RULE",
            "crate::aws::target::On",
            "crate::aws::Aws"
        ]
    );
    let code = code_only("use super::*; // crate::aws::apply\nlet x = \"crate::aws::plan\";\nsuper::super::common::read('\\'', a::b);");
    assert_eq!(
        paths(&code),
        ["super", "super::super::common::read", "a::b"]
    );
    assert_eq!(
        without_tests("a::b;\n#[cfg(test)]\nmod tests {\n fn f() { {} }\n}\nc::d;"),
        "a::b;\n\nc::d;"
    );
    let graph = graph();
    assert!(graph["crate::aws::apply"].contains("crate::aws::observe"));
    assert!(graph["crate::commands"].contains("crate::commands::apply"));
    assert!(graph["crate::commands::apply"].contains("crate::commands::common"));
    assert!(graph["crate::aws::target"].contains("crate::aws::target::cluster"));
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
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/aws/plan.rs"))
            .unwrap();
    let plan = without_tests(&code_only(&source));
    for call in ["block_on", ".send()", "aws.", "Aws"] {
        assert!(!plan.contains(call), "aws::plan makes AWS calls ({call})");
    }
}
