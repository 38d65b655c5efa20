//! The shape of the code, checked: no import cycles between the top-level modules of `src/`
//! (a folder or a file each), and no source file past the size where it should be split.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files longer than this are split by role (STYLE.md: "a file past ~400 lines is split").
const MAX_FILE_LINES: usize = 520;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/store/mongo/read.rs` → `store`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules a file names through `crate::`, including `use crate::{a, b::c}`.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    for file in &files {
        let from = module_of(&src, file);
        // lib.rs wires everything together and main.rs is the binary: both are the roots.
        if from == "lib" || from == "main" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let edges = graph.entry(from.clone()).or_default();
        for to in imports(&text) {
            if to != from && modules.contains(&to) {
                edges.insert(to);
            }
        }
    }
    assert!(graph.len() > 10, "found the modules: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        imports("use crate::{gps::Position, store};\nlet x = crate::clock::now_ms();"),
        ["clock", "gps", "store"].map(String::from).into()
    );
}
#[test]
fn no_source_file_is_past_the_split_size() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_FILE_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these by role: {long:?}");
}

/// Where the embedded store may open a write transaction that can commit durably: everything
/// else goes through `commit::begin_staged`, because a durable commit that is not a
/// checkpoint's would make redb durable with groups whose log records are not synced, and
/// without the summaries they left pending (`src/store/embedded/pending.rs`).
const DURABLE_WRITERS: [(&str, usize); 6] = [
    ("commit.rs", 1),  // begin_staged itself
    ("recover.rs", 1), // the checkpoint's durable commit
    ("mod.rs", 1),     // creating the tables at open, before the log
    ("heat.rs", 1),    // converting an older store's heatmaps at open, before the log
    ("runs.rs", 1),    // converting an older store's chunk index at open, before the log
    ("shared.rs", 1),  // probing whether redb refuses writes (never committed)
];

#[test]
fn the_embedded_store_commits_durably_only_in_checkpoints() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/embedded");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests may do as they like (in the file, or in a `*_tests.rs` of their own).
        let code = text.split("#[cfg(test)]").next().unwrap();
        let code = if file.to_string_lossy().ends_with("_tests.rs") {
            ""
        } else {
            code
        };
        let found = code.matches("begin_write()").count();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let allowed = DURABLE_WRITERS
            .iter()
            .find(|(f, _)| *f == name)
            .map_or(0, |(_, n)| *n);
        assert_eq!(
            found, allowed,
            "{name} opens {found} write transactions with begin_write() where {allowed} may: use commit::begin_staged and a checkpoint"
        );
    }
}
