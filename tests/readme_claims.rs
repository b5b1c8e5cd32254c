//! The README's claims and the tests that back them (README, "Claims and the tests that back
//! them"): every claim id used in the text is in the claims table, every test the table names
//! exists and names its claim in its doc comment, and every sentence that says "tested" or
//! "guarantee" carries a claim id. Reads files only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("list a source directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Claim ids (`[C12]` → "C12") in `text`.
fn ids(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("[C") {
        let tail = &rest[i + 2..];
        let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && tail[digits.len()..].starts_with(']') {
            out.push(format!("C{digits}"));
        }
        rest = &rest[i + 2..];
    }
    out
}

/// The claims section and the rest of the README.
fn split_readme() -> (String, String) {
    let text = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = text
        .find("### Claims and the tests that back them")
        .expect("README has a claims section");
    let end = text[start..]
        .find("\n## ")
        .map_or(text.len(), |i| start + i);
    let rest = format!("{}{}", &text[..start], &text[end..]);
    (text[start..end].to_string(), rest)
}

/// The claims table: id → the tests named in its row.
fn table(section: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| [C")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let id = ids(cells[1]).pop().expect("an id in the first cell");
        let tests = cells[3]
            .split(',')
            .map(|t| t.trim().trim_matches('`').to_string())
            .filter(|t| !t.is_empty())
            .collect();
        assert!(out.insert(id.clone(), tests).is_none(), "{id} listed twice");
    }
    out
}

/// The doc comment of `fn name(` in any source file, or None when no such function exists.
fn doc_of(sources: &[(PathBuf, String)], name: &str) -> Option<String> {
    let pattern = format!("fn {name}(");
    for (_, text) in sources {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.contains(&pattern) {
                continue;
            }
            let mut doc = Vec::new();
            let mut j = i;
            while j > 0 {
                j -= 1;
                let l = lines[j].trim();
                if l.starts_with("#[") {
                    continue;
                }
                if let Some(d) = l.strip_prefix("///") {
                    doc.push(d.to_string());
                    continue;
                }
                break;
            }
            doc.reverse();
            return Some(doc.join("\n"));
        }
    }
    None
}

#[test]
fn every_claim_is_backed_by_a_test_that_names_it() {
    let (section, rest) = split_readme();
    let claims = table(&section);
    assert!(claims.len() >= 10, "{claims:?}");
    // Every id used in the text is in the table, and every table id is used in the text.
    let used: std::collections::BTreeSet<String> = ids(&rest).into_iter().collect();
    for id in &used {
        assert!(
            claims.contains_key(id),
            "[{id}] is used in README but not in the claims table"
        );
    }
    for id in claims.keys() {
        assert!(
            used.contains(id),
            "[{id}] is in the claims table but no sentence carries it"
        );
    }
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("tests"), &mut files);
    let sources: Vec<(PathBuf, String)> = files
        .into_iter()
        .filter(|p| !p.ends_with("readme_claims.rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read a source file");
            (p, text)
        })
        .collect();
    for (id, tests) in &claims {
        assert!(!tests.is_empty(), "[{id}] names no test");
        for test in tests {
            let doc = doc_of(&sources, test)
                .unwrap_or_else(|| panic!("[{id}]: no test function `{test}`"));
            assert!(
                doc.contains(&format!("[{id}]")),
                "[{id}]: the doc comment of `{test}` does not name the claim: {doc:?}"
            );
        }
    }
}

#[test]
fn every_tested_or_guaranteed_sentence_carries_a_claim_id() {
    let (_, rest) = split_readme();
    // Prose only: code blocks and table rows are left out; sentences end at ". " or a blank line.
    let mut prose = String::new();
    let mut in_code = false;
    for line in rest.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || line.trim_start().starts_with('|') {
            prose.push('\n');
            continue;
        }
        prose.push_str(line);
        prose.push(if line.trim().is_empty() { '\n' } else { ' ' });
    }
    let mut missing = Vec::new();
    for paragraph in prose.split('\n') {
        for sentence in paragraph.split(". ") {
            let lower = sentence.to_lowercase();
            if (lower.contains("tested") || lower.contains("guarantee")) && ids(sentence).is_empty()
            {
                missing.push(sentence.trim().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "sentences without a claim id: {missing:#?}"
    );
}

#[test]
fn the_id_parser_is_exact() {
    assert_eq!(ids("a [C1] b [C23], [C] [Cx] [C4"), ["C1", "C23"]);
}
