//! The graph of a crate's modules, one node per source file, read from the paths its
//! code names (`use crate::…`, `super::…`, `self::…`, in `use` lines and in code alike).
//!
//! A path that ends at a folder's `mod.rs` is followed through its `pub use` to the file
//! that defines the item: a `mod.rs` only declares and re-exports, so importing
//! `super::Thing` is importing the sibling that `Thing` lives in. A path into a module's
//! own ancestors that no re-export explains is left out: it names the folder, not a
//! file of it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::{code_of, non_test_lines, rust_files};

/// A module: the path of its file under `src/`, without `.rs`, `mod.rs` and `lib.rs`.
pub type Module = Vec<String>;

/// The modules of the crate under `src` and which other modules each one imports.
pub struct Graph {
    /// The file each module is in.
    pub files: BTreeMap<Module, PathBuf>,
    /// Each module's imports (never itself, never its own ancestors).
    pub edges: BTreeMap<Module, BTreeSet<Module>>,
}

/// The module a source file is.
pub fn module_of(src: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut module: Module = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if module
        .last()
        .is_some_and(|last| ["mod", "lib", "main"].contains(&last.as_str()))
    {
        module.pop();
    }
    module
}

/// Every path `code` names from `crate`, `super` or `self`, braces expanded: each as
/// its first word and the segments after it (`use crate::a::{b::C, d}` is
/// `("crate", [a, b, C])` and `("crate", [a, d])`).
pub fn paths_named(code: &str) -> Vec<(String, Vec<String>)> {
    let mut paths = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        for (i, _) in code.match_indices(start) {
            let before = code[..i].trim_end();
            // `crate::x` itself, not `foo::super::x` (counted from its own start) or
            // `tollgate_crate::x`.
            if before.ends_with("::")
                || code[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let (tree, _) = parse_tree(&code[i + start.len()..]);
            for segments in tree {
                paths.push((start.trim_end_matches("::").to_string(), segments));
            }
        }
    }
    paths
}

/// The paths of a `use` tree that starts at `text`, and how many bytes of `text` it
/// took. `as Alias` is read past (a re-export under another name is not followed).
fn parse_tree(text: &str) -> (Vec<Vec<String>>, usize) {
    let skip_space = |at: usize| at + (text[at..].len() - text[at..].trim_start().len());
    let word_at = |at: usize| {
        text[at..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '*'))
            .unwrap_or(text.len() - at)
    };
    let mut prefix = Vec::new();
    let mut at = 0;
    loop {
        at = skip_space(at);
        if text[at..].starts_with('{') {
            at += 1;
            let mut paths = Vec::new();
            loop {
                at = skip_space(at);
                if text[at..].starts_with('}') {
                    return (paths, at + 1);
                }
                let (branch, used) = parse_tree(&text[at..]);
                at += used;
                paths.extend(
                    branch
                        .into_iter()
                        .map(|tail| [prefix.clone(), tail].concat()),
                );
                at = skip_space(at);
                if text[at..].starts_with(',') {
                    at += 1;
                } else {
                    let closed = usize::from(text[at..].starts_with('}'));
                    return (paths, at + closed);
                }
            }
        }
        let end = word_at(at);
        if end > 0 {
            prefix.push(text[at..at + end].to_string());
        }
        at += end;
        if end > 0 && text[at..].starts_with("::") {
            at += 2;
            continue;
        }
        let after = skip_space(at);
        if end > 0 && text[after..].starts_with("as ") {
            let alias = skip_space(after + 3);
            at = alias + word_at(alias);
        }
        return (vec![prefix], at);
    }
}

/// For a folder's `mod.rs`: each name it re-exports and the child module it comes from.
fn re_exports(module: &Module, code: &str) -> BTreeMap<String, Module> {
    let mut names = BTreeMap::new();
    for statement in code.split(';') {
        let Some(tree) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        for segments in parse_tree(tree.trim_start_matches("self::")).0 {
            if let ([child, .., name], true) = (segments.as_slice(), segments.len() > 1) {
                let mut from = module.clone();
                from.push(child.clone());
                names.insert(name.clone(), from);
            }
        }
    }
    names
}

/// The graph of the crate whose sources are under `src` (test code left out).
pub fn graph(src: &Path) -> Graph {
    let mut files = BTreeMap::new();
    let mut code = BTreeMap::new();
    for file in rust_files(src) {
        if file.file_name().is_some_and(|name| name == "tests.rs") {
            continue; // a module of unit tests, all test code
        }
        let text = fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = non_test_lines(&text).iter().map(|l| code_of(l)).collect();
        let module = module_of(src, &file);
        code.insert(module.clone(), lines.join("\n"));
        files.insert(module, file);
    }
    let facades: BTreeMap<Module, BTreeMap<String, Module>> = code
        .iter()
        .map(|(module, code)| (module.clone(), re_exports(module, code)))
        .collect();
    let resolve = |base: Module, segments: &[String]| -> Module {
        let mut at = base;
        for segment in segments {
            let mut inner = at.clone();
            inner.push(segment.clone());
            if files.contains_key(&inner) {
                at = inner;
            } else if let Some(from) = facades
                .get(&at)
                .and_then(|names| names.get(segment))
                .filter(|from| files.contains_key(*from))
            {
                at = from.clone();
                // Through a facade to the file the item lives in, then as far as it goes.
                while let Some(next) = facades.get(&at).and_then(|names| names.get(segment)) {
                    at = next.clone();
                }
                break;
            } else {
                break;
            }
        }
        at
    };
    let mut edges = BTreeMap::new();
    for (module, code) in &code {
        let mut imports = BTreeSet::new();
        for (first, segments) in paths_named(code) {
            let mut base = match first.as_str() {
                "crate" => Vec::new(),
                _ => module.clone(),
            };
            let mut segments = segments.as_slice();
            if first == "super" {
                base.pop();
                while segments.first().is_some_and(|s| s == "super") {
                    base.pop();
                    segments = &segments[1..];
                }
            }
            let target = resolve(base, segments);
            if !module.starts_with(&target) {
                imports.insert(target);
            }
        }
        edges.insert(module.clone(), imports);
    }
    Graph { files, edges }
}

impl Graph {
    /// The circles: each set of two or more modules that import each other, directly or
    /// through others (Tarjan's strongly connected components).
    pub fn circles(&self) -> Vec<Vec<Module>> {
        struct Walk<'g> {
            graph: &'g Graph,
            index: BTreeMap<&'g Module, usize>,
            low: BTreeMap<&'g Module, usize>,
            stack: Vec<&'g Module>,
            circles: Vec<Vec<Module>>,
        }
        impl<'g> Walk<'g> {
            fn visit(&mut self, module: &'g Module) {
                let n = self.index.len();
                self.index.insert(module, n);
                self.low.insert(module, n);
                self.stack.push(module);
                for next in self.graph.edges.get(module).into_iter().flatten() {
                    if !self.index.contains_key(next) {
                        self.visit(next);
                        let low = self.low[module].min(self.low[next]);
                        self.low.insert(module, low);
                    } else if self.stack.contains(&next) {
                        let low = self.low[module].min(self.index[next]);
                        self.low.insert(module, low);
                    }
                }
                if self.low[module] == self.index[module] {
                    let at = self.stack.iter().position(|m| *m == module).unwrap();
                    let component: Vec<Module> =
                        self.stack.drain(at..).map(|m| m.to_vec()).collect();
                    if component.len() > 1 {
                        self.circles.push(component);
                    }
                }
            }
        }
        let mut walk = Walk {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            circles: Vec::new(),
        };
        for module in self.files.keys() {
            if !walk.index.contains_key(module) {
                walk.visit(module);
            }
        }
        walk.circles
    }
}
