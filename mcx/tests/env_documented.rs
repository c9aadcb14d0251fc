//! Every environment variable an `mcx` crate's source reads is in
//! docs/operations.md's table (issue 13 point 5: "Documented in
//! docs/operations.md with every environment variable"). A variable is
//! found as a string literal `"MCX_…"` in any crate's `src/`; benches and
//! tests are not `mcx` and keep their own variables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `MCX_…` names quoted in `text`.
fn quoted_names(text: &str) -> impl Iterator<Item = &str> {
    text.split("\"MCX_").skip(1).filter_map(|rest| {
        let end = rest.find('"')?;
        let name = &rest[..end];
        (!name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
        .then_some(name)
    })
}

#[test]
fn every_environment_variable_the_sources_read_is_in_operations_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root).unwrap().flatten() {
        let src = krate.path().join("src");
        let is_ours = krate.file_name().to_string_lossy().starts_with("mcx");
        if is_ours && src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut names = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        names.extend(quoted_names(&text).map(|n| format!("MCX_{n}")));
    }
    assert!(names.contains("MCX_LOG"), "{names:?}");
    let doc = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !doc.contains(&format!("| `{n}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "read by the sources but not a row of docs/operations.md's table: {missing:?}"
    );
}

#[test]
fn names_are_found_only_as_whole_quoted_literals() {
    let names: Vec<_> = quoted_names(r#"var("MCX_A_1") "MCX_b" x"MCX_" "MCX_C"#).collect();
    assert_eq!(names, ["A_1"]);
}
