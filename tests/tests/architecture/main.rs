//! The shape of the code, checked as code is: the control plane's folders import only
//! from the folders beneath them (the layering `ARCHITECTURE.md` draws), every `mod.rs`
//! only declares and re-exports, no two source files import each other (directly or
//! through others: [`modules`]), no source file grows past 500 lines before its tests,
//! and comments cite only files that are in the repository.
//!
//! Each check reads the sources as text: it needs no build of what it checks, and it
//! fails naming the file and line to look at.

// Helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use tollgate_e2e::process::repo_root;

mod modules;

/// The control plane's folders, bottom first, each with the folders it may import from
/// (besides itself). Whatever a folder may import, the folders above it may too.
const LAYERS: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("store", &["model"]),
    ("plan", &["model", "store"]),
    ("metrics", &[]),
    ("repo", &["model", "store", "metrics"]),
    ("error", &["repo", "store"]),
    (
        "engine",
        &["model", "store", "plan", "metrics", "repo", "error"],
    ),
    (
        "http",
        &[
            "model", "store", "plan", "metrics", "repo", "error", "engine",
        ],
    ),
    (
        "server",
        &[
            "model", "store", "plan", "metrics", "repo", "error", "engine", "http",
        ],
    ),
    (
        "cli",
        &[
            "model", "store", "plan", "metrics", "repo", "error", "engine", "http", "server",
        ],
    ),
];

/// The most lines a source file may have before its first `#[cfg(test)]`.
const MAX_LINES: usize = 500;

/// The crates whose sources are held to the rules on files.
const SOURCES: &[&str] = &["control-plane/src", "filter/src", "protocol/src"];

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines of `text` before its first `#[cfg(test)]` (test code may import anything).
fn non_test_lines(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .collect()
}

/// A line without its comment: what follows `//` outside a string literal.
fn code_of(line: &str) -> &str {
    let mut in_string = false;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '"' if previous != '\\' => in_string = !in_string,
            '/' if !in_string && previous == '/' => return &line[..i - 1],
            _ => {}
        }
        previous = c;
    }
    line
}

/// The top-level folder (or file) of the control plane a path under its `src/` is in.
fn room_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// The folders `code` names as `crate::<folder>`.
fn rooms_named(code: &str) -> Vec<&str> {
    code.match_indices("crate::")
        .filter(|(i, _)| {
            // `crate::x`, not `tollgate_crate::x` or a longer identifier.
            !code[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(i, _)| {
            let rest = &code[i + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn each_control_plane_folder_imports_only_from_the_folders_beneath_it() {
    let src = repo_root().join("control-plane/src");
    let allowed = |room: &str| LAYERS.iter().find(|(name, _)| *name == room).map(|l| l.1);
    let mut wrong = Vec::new();
    for file in rust_files(&src) {
        let room = room_of(&src, &file);
        if room == "lib" || room == "main" {
            continue;
        }
        let Some(may) = allowed(&room) else {
            wrong.push(format!(
                "{}: folder {room} is not in the layering of this test (add it where it belongs)",
                file.display()
            ));
            continue;
        };
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in non_test_lines(&text).iter().enumerate() {
            for named in rooms_named(code_of(line)) {
                if named != room && !may.contains(&named) {
                    wrong.push(format!(
                        "{}:{}: {room} imports from {named}, which is not beneath it",
                        file.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports running back up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_folder_of_the_layering_exists() {
    let src = repo_root().join("control-plane/src");
    for (room, _) in LAYERS {
        assert!(
            src.join(room).is_dir() || src.join(format!("{room}.rs")).is_file(),
            "{room} is in the layering but not in control-plane/src"
        );
    }
}

#[test]
fn a_mod_rs_only_declares_and_re_exports() {
    let mut wrong = Vec::new();
    for crate_src in SOURCES {
        for file in rust_files(&repo_root().join(crate_src)) {
            if file.file_name().is_none_or(|name| name != "mod.rs") {
                continue;
            }
            let text = fs::read_to_string(&file).unwrap();
            let code: String = non_test_lines(&text)
                .iter()
                .map(|line| code_of(line))
                .collect::<Vec<_>>()
                .join("\n");
            for statement in code.split(';') {
                let mut statement = statement.trim();
                // Attributes (`#[cfg(test)]`, `#![allow(…)]`) go with what follows.
                while statement.starts_with("#[") || statement.starts_with("#![") {
                    let end = statement.find(']').map_or(statement.len(), |i| i + 1);
                    statement = statement[end..].trim_start();
                }
                let allowed = ["mod ", "pub mod ", "pub(crate) mod ", "use ", "pub use "]
                    .iter()
                    .any(|start| statement.starts_with(start));
                if !statement.is_empty() && !allowed {
                    let first = statement.lines().next().unwrap_or_default();
                    wrong.push(format!("{}: {first}", file.display()));
                    break;
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a mod.rs defines items (put them in a file of their own, which its siblings \
         import directly):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_source_file_is_in_a_circle_of_imports() {
    let mut wrong = Vec::new();
    for crate_src in SOURCES {
        let graph = modules::graph(&repo_root().join(crate_src));
        for circle in graph.circles() {
            let files: Vec<String> = circle
                .iter()
                .map(|module| graph.files[module].display().to_string())
                .collect();
            let imports: Vec<String> = circle
                .iter()
                .flat_map(|from| {
                    graph.edges[from]
                        .iter()
                        .filter(|to| circle.contains(to))
                        .map(move |to| format!("{} -> {}", from.join("/"), to.join("/")))
                })
                .collect();
            wrong.push(format!(
                "{}\n    ({})",
                files.join("\n"),
                imports.join(", ")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "files that import each other (move what both need into a file beneath them):\n{}",
        wrong.join("\n\n")
    );
}

#[test]
fn no_source_file_grows_past_five_hundred_lines_before_its_tests() {
    let mut long = Vec::new();
    for crate_src in SOURCES {
        for file in rust_files(&repo_root().join(crate_src)) {
            if file.file_name().is_some_and(|name| name == "tests.rs") {
                continue; // a module of unit tests, all test code
            }
            let text = fs::read_to_string(&file).unwrap();
            let lines = non_test_lines(&text).len();
            if lines > MAX_LINES {
                long.push(format!("{}: {lines} lines", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files past {MAX_LINES} lines of non-test code (split them by concern):\n{}",
        long.join("\n")
    );
}

#[test]
fn comments_cite_only_files_in_the_repository() {
    // Documents that live outside the repository, which a reader of it cannot open.
    let outside = [["SPEC", " §"].concat(), ["PLATFORM", ".md"].concat()];
    let mut cited = Vec::new();
    let roots = [
        "control-plane/src",
        "control-plane/tests",
        "filter",
        "protocol",
        "tests",
        "fuzz/fuzz_targets",
        "bench",
        "scripts",
        "envoy",
    ];
    for root in roots {
        for file in text_files(&repo_root().join(root)) {
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            for (n, line) in text.lines().enumerate() {
                if outside.iter().any(|name| line.contains(name.as_str())) {
                    cited.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        cited.is_empty(),
        "comments that cite documents outside the repository (say the fact itself):\n{}",
        cited.join("\n")
    );
}

/// The source and config files under `dir` (not build output).
fn text_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if path.is_dir() {
                if !["target", "corpus", "artifacts", "node_modules"].contains(&name.as_ref()) {
                    pending.push(path);
                }
            } else if ["rs", "lua", "sh", "yaml", "toml", "md", "json"]
                .iter()
                .any(|ext| path.extension().is_some_and(|e| e == *ext))
            {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn the_checks_see_what_they_are_meant_to() {
    // The helpers themselves, on inputs whose answer is known: a check that reads
    // nothing passes without proving anything.
    assert_eq!(
        rooms_named("use crate::engine::Engine; let x = crate::store::COUNTER_MAX;"),
        vec!["engine", "store"]
    );
    assert!(rooms_named("use tollgate_crate::x;").is_empty());
    assert_eq!(
        code_of(r#"let url = "http://x"; // crate::cli"#),
        r#"let url = "http://x"; "#
    );
    assert_eq!(non_test_lines("a\nb\n#[cfg(test)]\nc"), vec!["a", "b"]);
    let src = repo_root().join("control-plane/src");
    assert!(
        rust_files(&src).len() > 50,
        "the control plane's sources are found"
    );
    assert_eq!(room_of(&src, &src.join("engine/check.rs")), "engine");
    assert_eq!(room_of(&src, &src.join("metrics.rs")), "metrics");

    let words = |paths: Vec<(String, Vec<String>)>| -> Vec<String> {
        paths
            .into_iter()
            .map(|(first, rest)| [vec![first], rest].concat().join("::"))
            .collect()
    };
    assert_eq!(
        words(modules::paths_named(
            "use crate::a::{b::{C, d as D}, self, e};\nlet x = super::super::f::g(); y::super::h"
        )),
        [
            "crate::a::b::C",
            "crate::a::b::d",
            "crate::a::self",
            "crate::a::e",
            "super::super::f::g"
        ]
    );
    assert_eq!(
        modules::module_of(&src, &src.join("engine/mod.rs")),
        ["engine"]
    );
    assert_eq!(
        modules::module_of(&src, &src.join("engine/check.rs")),
        ["engine", "check"]
    );
    // The graph follows a facade's re-export to the file behind it, and sees circles.
    let graph = modules::graph(&src);
    let check = vec!["engine".to_string(), "check".to_string()];
    assert!(
        graph.edges[&check]
            .iter()
            .any(|to| to.len() > 1 && to[0] == "store"),
        "engine/check imports a file of store/ (through store/mod.rs): {:?}",
        graph.edges[&check]
    );
}
