//! The crate's shape, checked: no import cycle between sibling modules, no source file over
//! [`MAX_LINES`] lines, no function over [`MAX_FN_LINES`].
//!
//! A module's dependencies are the `crate::…` and `super::…` paths its files name (test code after
//! `#[cfg(test)]`, and `tests.rs` files, left out). A path from `a::x` to `b::y` is an edge between
//! the two children of their common ancestor that hold them (`a → b` at the top, `hub::session →
//! hub::presence` inside `hub`); a module naming its own parent or child is not a cycle. Each level's
//! graph must be acyclic, so the crate reads from the leaves up.
//!
//! What is still wrong is listed in [`KNOWN_CYCLES`], [`KNOWN_LONG`] and [`KNOWN_LONG_FNS`]: the
//! test fails on anything
//! new, and on a listed entry that is fixed (take it off the list), so the lists only shrink.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 400;
/// A function's lines, from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 60;

/// Functions over [`MAX_FN_LINES`] not yet taken apart, as `file: name` (none left).
const KNOWN_LONG_FNS: &[&str] = &[];

/// Import cycles not yet taken apart, each as `parent: its sorted members` (none left).
const KNOWN_CYCLES: &[&str] = &[];

/// Files over [`MAX_LINES`] not yet split (none left).
const KNOWN_LONG: &[&str] = &[];

/// `src/a/b.rs` and `src/a/b/mod.rs` → `a::b`; `src/lib.rs` → the crate (empty).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

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

/// The module paths `code` names, resolved against the file's module `me` (`super` in `a/b.rs`
/// and in `a/b/mod.rs` is `a` either way).
fn references(code: &str, me: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let text: String = code
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = text.as_bytes();
    for (start, anchor) in [("crate::", 0usize), ("super::", 1)] {
        let mut from = 0;
        while let Some(at) = text[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let mut base: Vec<String> = match anchor {
                0 => Vec::new(),
                _ => me[..me.len().saturating_sub(1)].to_vec(),
            };
            // `super::super::x`
            let mut rest = &text[from..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            for path in expand(rest) {
                let mut full = base.clone();
                full.extend(path);
                found.push(full);
            }
        }
    }
    found
}

/// The paths a `use` tail names: `a::b::C` → `[a, b, C]`; `{a::B, c}` → both.
fn expand(rest: &str) -> Vec<Vec<String>> {
    if let Some(inner) = rest.strip_prefix('{') {
        return group(inner).into_iter().flat_map(expand).collect();
    }
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if len == 0 {
        return vec![Vec::new()];
    }
    let head = rest[..len].to_string();
    match rest[len..].strip_prefix("::") {
        Some(tail) => expand(tail)
            .into_iter()
            .map(|t| std::iter::once(head.clone()).chain(t).collect())
            .collect(),
        None => vec![vec![head]],
    }
}

/// The items of a `{…}` group (`inner` starts after its `{`), split at its top-level commas.
fn group(inner: &str) -> Vec<&str> {
    let (mut depth, mut item, mut items) = (0, 0, Vec::new());
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(inner[item..i].trim());
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(inner[item..i].trim());
                item = i + 1;
            }
            _ => {}
        }
    }
    items
}

struct Crate {
    /// Every module path.
    modules: BTreeSet<Vec<String>>,
    /// Module → the module paths it names.
    uses: BTreeMap<Vec<String>, Vec<Vec<String>>>,
    /// Source files and their line counts.
    lines: Vec<(String, usize)>,
    /// Functions (`file: name`) and their line counts.
    functions: Vec<(String, usize)>,
}

/// Each `fn` with a body in `code`: its name and lines, to the `}` at the `fn`'s indentation.
fn functions(code: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let mut rest = body;
        for qualifier in [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "const ",
            "async ",
            "unsafe ",
        ] {
            rest = rest.strip_prefix(qualifier).unwrap_or(rest);
        }
        let Some(signature) = rest.strip_prefix("fn ") else {
            continue;
        };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let name: String = signature
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            found.push((name, end + 2));
        }
    }
    found
}

fn read_crate() -> Crate {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut modules = BTreeSet::new();
    let mut uses = BTreeMap::new();
    let mut lines = Vec::new();
    let mut fns = Vec::new();
    for file in &files {
        let code = std::fs::read_to_string(file).unwrap();
        let rel = file.strip_prefix(&src).unwrap().display().to_string();
        lines.push((format!("src/{rel}"), code.lines().count()));
        for (name, n) in functions(&code) {
            fns.push((format!("src/{rel}: {name}"), n));
        }
        let module = module_of(&src, file);
        if module.last().is_some_and(|m| m == "tests") || module.first().is_some_and(|m| m == "bin")
        {
            continue;
        }
        for depth in 1..=module.len() {
            modules.insert(module[..depth].to_vec());
        }
        uses.insert(module.clone(), references(&code, &module));
    }
    Crate {
        modules,
        uses,
        lines,
        functions: fns,
    }
}

/// The longest known module `path` starts with.
fn resolve(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| p.is_empty() || modules.contains(p))
        .unwrap_or_default()
}

/// Edges between siblings: (parent, from child, to child).
fn sibling_edges(krate: &Crate) -> BTreeSet<(Vec<String>, String, String)> {
    let mut edges = BTreeSet::new();
    for (from, paths) in &krate.uses {
        for path in paths {
            let to = resolve(&krate.modules, path);
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                edges.insert((
                    from[..common].to_vec(),
                    from[common].clone(),
                    to[common].clone(),
                ));
            }
        }
    }
    edges
}

/// The strongly connected components of more than one module, per parent: "parent: a, b".
fn cycles(edges: &BTreeSet<(Vec<String>, String, String)>) -> BTreeSet<String> {
    let mut by_parent: BTreeMap<&Vec<String>, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for (parent, a, b) in edges {
        by_parent
            .entry(parent)
            .or_default()
            .entry(a)
            .or_default()
            .push(b);
    }
    let mut found = BTreeSet::new();
    for (parent, graph) in by_parent {
        let nodes: BTreeSet<&str> = graph
            .iter()
            .flat_map(|(a, bs)| std::iter::once(*a).chain(bs.iter().copied()))
            .collect();
        let reach = |from: &str| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![from];
            while let Some(n) = stack.pop() {
                for &m in graph.get(n).into_iter().flatten() {
                    if seen.insert(m) {
                        stack.push(m);
                    }
                }
            }
            seen
        };
        let reaches: BTreeMap<&str, BTreeSet<&str>> =
            nodes.iter().map(|n| (*n, reach(n))).collect();
        let mut done = BTreeSet::new();
        for &n in &nodes {
            if done.contains(n) || !reaches[n].contains(n) {
                continue;
            }
            let component: Vec<&str> = nodes
                .iter()
                .copied()
                .filter(|m| reaches[n].contains(m) && reaches[m].contains(n))
                .collect();
            done.extend(component.iter().copied());
            let parent = if parent.is_empty() {
                "crate".to_string()
            } else {
                parent.join("::")
            };
            found.insert(format!("{parent}: {}", component.join(", ")));
        }
    }
    found
}

fn known(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn no_import_cycle_between_sibling_modules() {
    let krate = read_crate();
    let edges = sibling_edges(&krate);
    let found = cycles(&edges);
    let explain = |cycle: &String| {
        let (parent, members) = cycle.split_once(": ").unwrap();
        let members: BTreeSet<&str> = members.split(", ").collect();
        edges
            .iter()
            .filter(|(p, a, b)| {
                let p = if p.is_empty() {
                    "crate".into()
                } else {
                    p.join("::")
                };
                p == parent && members.contains(a.as_str()) && members.contains(b.as_str())
            })
            .map(|(_, a, b)| format!("{a} → {b}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let new: Vec<String> = found
        .difference(&known(KNOWN_CYCLES))
        .map(|c| format!("{c} ({})", explain(c)))
        .collect();
    let fixed: Vec<String> = known(KNOWN_CYCLES).difference(&found).cloned().collect();
    assert!(new.is_empty(), "import cycles: {new:#?}");
    assert!(
        fixed.is_empty(),
        "no longer a cycle, take them off KNOWN_CYCLES: {fixed:?}"
    );
}

#[test]
fn no_source_file_over_the_line_limit() {
    let krate = read_crate();
    let long: BTreeSet<String> = krate
        .lines
        .iter()
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(f, _)| f.clone())
        .collect();
    let listed = known(KNOWN_LONG);
    let fixed: Vec<_> = listed.difference(&long).collect();
    let counts: BTreeMap<_, _> = krate.lines.iter().cloned().collect();
    let new: Vec<String> = long
        .difference(&listed)
        .map(|f| format!("{f}: {} lines", counts[f]))
        .collect();
    assert!(new.is_empty(), "over {MAX_LINES} lines: {new:#?}");
    assert!(
        fixed.is_empty(),
        "no longer over {MAX_LINES} lines, take them off KNOWN_LONG: {fixed:?}"
    );
}

#[test]
fn no_function_over_the_line_limit() {
    let krate = read_crate();
    let long: BTreeMap<String, usize> = krate
        .functions
        .iter()
        .filter(|(_, n)| *n > MAX_FN_LINES)
        .cloned()
        .collect();
    let listed = known(KNOWN_LONG_FNS);
    let new: Vec<String> = long
        .iter()
        .filter(|(f, _)| !listed.contains(*f))
        .map(|(f, n)| format!("{f}: {n} lines"))
        .collect();
    let fixed: Vec<&String> = listed.iter().filter(|f| !long.contains_key(*f)).collect();
    assert!(
        new.is_empty(),
        "functions over {MAX_FN_LINES} lines: {new:#?}"
    );
    assert!(
        fixed.is_empty(),
        "no longer over {MAX_FN_LINES} lines, take them off KNOWN_LONG_FNS: {fixed:?}"
    );
}
