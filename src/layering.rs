//! The module layers of docs/ARCHITECTURE.md, checked: every `crate::<module>`
//! path in `src/` must name a module in a lower layer than its own.
//!
//! A token scan over our own source (comments dropped), not a parser: it
//! only has to see the paths we write, and a false alarm names the line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top to bottom; a module may use the modules of the layers below its own,
/// none of its own layer or above. The same table is drawn in
/// docs/ARCHITECTURE.md and listed in the crate doc's Layout.
const LAYERS: &[&[&str]] = &[
    &["cli", "fuzzing"],
    &["serve"],
    &["admin", "front"],
    &["auth", "audit"],
    &["upstream"],
    &["policy"],
    &["keys"],
    &["config"],
    &["telemetry", "chain"],
    &["format"],
];

/// Files that belong to no module: the crate root and this test.
const NOT_MODULES: &[&str] = &["lib.rs", "main.rs", "layering.rs"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
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

/// The crate modules `line` names by a `crate::` path (`crate::a::…` or
/// `crate::{a, b::…}`).
fn crate_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::`-like or part of a longer name
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.push(ident(&group[start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(ident(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.push(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

/// Every `file:line: a -> b` where `a` uses a module of its own layer or above.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        if NOT_MODULES.contains(&first) {
            continue;
        }
        let module = first.strip_suffix(".rs").unwrap_or(first);
        let Some(own) = layer_of(module) else {
            bad.push(format!("{}: module {module} is in no layer", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for used in crate_modules(line) {
                if used == module || used == "self" {
                    continue;
                }
                match layer_of(&used) {
                    Some(layer) if layer > own => {}
                    _ => bad.push(format!("{}:{}: {module} -> {used}", rel.display(), n + 1)),
                }
            }
        }
    }
    bad
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "imports against the layers of docs/ARCHITECTURE.md:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_module_is_in_exactly_one_layer() {
    let mut seen = BTreeSet::new();
    for module in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(seen.insert(*module), "{module} is in two layers");
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if NOT_MODULES.contains(&name.as_str()) {
            continue;
        }
        let module = name.strip_suffix(".rs").unwrap_or(&name);
        assert!(seen.contains(module), "src/{name} is in no layer");
    }
}

#[test]
fn the_scan_sees_paths_and_groups_but_not_comments() {
    assert_eq!(crate_modules("use crate::keys::KeyStore;"), ["keys"]);
    assert_eq!(
        crate_modules("use crate::{format::{Kek, KeyId}, config};"),
        ["format", "config"]
    );
    assert_eq!(
        crate_modules("let m = x; // see crate::serve"),
        Vec::<String>::new()
    );
    assert_eq!(crate_modules("$crate::format"), Vec::<String>::new());
}
