//! The documentation's claims and the tests that back them (tests/README.md, "Claims and the
//! tests that back them"): every claim id used in any of the project's markdown files is in the
//! claims table, every test the table names exists as a `#[test]` and names its claim in its doc
//! comment, and every sentence that says "tested" or "guarantee" carries a claim id. Reads files
//! only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The heading of the claims section, in `tests/README.md`.
const CLAIMS_HEADING: &str = "## Claims and the tests that back them";

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

/// Every markdown file of the project: `README.md` and the `.md` files below the top-level
/// folders the documentation lives in (not `target/`).
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    for dir in ["src", "tests", "scripts", "data", "models"] {
        walk(&root().join(dir), &mut out);
    }
    out.sort();
    out
}

/// The claims section (of `tests/README.md`) and the text of every markdown file without it.
fn split_docs() -> (String, String) {
    let claims_file = root().join("tests").join("README.md");
    let mut section = None;
    let mut rest = String::new();
    for path in markdown_files() {
        let text = std::fs::read_to_string(&path).expect("read a markdown file");
        if path == claims_file {
            let start = text
                .find(CLAIMS_HEADING)
                .expect("tests/README.md has a claims section");
            let after = start + CLAIMS_HEADING.len();
            let end = text[after..]
                .find("\n## ")
                .or_else(|| text[after..].find("\n# "))
                .map_or(text.len(), |i| after + i);
            section = Some(text[start..end].to_string());
            rest.push_str(&text[..start]);
            rest.push_str(&text[end..]);
        } else {
            rest.push_str(&text);
        }
        rest.push_str("\n\n");
    }
    (section.expect("tests/README.md exists"), rest)
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

/// What the sources hold under a claimed test's name.
#[derive(Debug, PartialEq)]
enum Found {
    /// A `#[test]` function of that name, with its doc comment.
    Test(String),
    /// Functions of that name exist, but none is a `#[test]`.
    NotATest,
    /// No function of that name.
    Missing,
}

/// The `#[test]` function `name` in any of `sources` (each a file's text) and its doc comment.
fn find_test(sources: &[&str], name: &str) -> Found {
    let mut found = Found::Missing;
    for text in sources {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(at) = line.find("fn ") else {
                continue;
            };
            let declared = line[at + 3..].split(['(', '<']).next().unwrap_or("");
            let before = line[..at].trim();
            if declared != name || !(before.is_empty() || before == "pub" || before == "async") {
                continue;
            }
            // Attributes and doc comment above the fn, nearest first.
            let mut doc = Vec::new();
            let mut is_test = false;
            let mut j = i;
            while j > 0 {
                j -= 1;
                let l = lines[j].trim();
                if l.starts_with("#[") {
                    is_test |= l == "#[test]";
                    continue;
                }
                if let Some(d) = l.strip_prefix("///") {
                    doc.push(d.to_string());
                    continue;
                }
                break;
            }
            if !is_test {
                found = Found::NotATest;
                continue;
            }
            doc.reverse();
            return Found::Test(doc.join("\n"));
        }
    }
    found
}

#[test]
fn every_claim_is_backed_by_a_test_that_names_it() {
    let (section, rest) = split_docs();
    let claims = table(&section);
    assert!(claims.len() >= 10, "{claims:?}");
    // Every id used in the text is in the table, and every table id is used in the text.
    let used: std::collections::BTreeSet<String> = ids(&rest).into_iter().collect();
    for id in &used {
        assert!(
            claims.contains_key(id),
            "[{id}] is used in the docs but not in the claims table (tests/README.md)"
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
    let sources: Vec<String> = files
        .into_iter()
        .filter(|p| !p.ends_with("readme_claims.rs"))
        .map(|p| std::fs::read_to_string(&p).expect("read a source file"))
        .collect();
    let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
    for (id, tests) in &claims {
        assert!(!tests.is_empty(), "[{id}] names no test");
        for test in tests {
            let doc = match find_test(&sources, test) {
                Found::Test(doc) => doc,
                Found::NotATest => panic!("[{id}]: `{test}` exists but is not a #[test]"),
                Found::Missing => panic!("[{id}]: no test function `{test}`"),
            };
            assert!(
                doc.contains(&format!("[{id}]")),
                "[{id}]: the doc comment of `{test}` does not name the claim: {doc:?}"
            );
        }
    }
}

#[test]
fn every_tested_or_guaranteed_sentence_carries_a_claim_id() {
    let (_, rest) = split_docs();
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

#[test]
fn only_a_test_function_backs_a_claim() {
    let helper = "/// Backs README claim [C1].\nfn helper() {}\n";
    let test = "/// Backs README claim [C1].\n#[test]\n#[ignore = \"slow\"]\nfn checked() {}\n";
    let tail = "fn checked_too_long() {}\n";
    assert_eq!(find_test(&[helper], "helper"), Found::NotATest);
    assert_eq!(find_test(&[helper], "help"), Found::Missing);
    assert_eq!(find_test(&[tail, helper], "checked"), Found::Missing);
    assert_eq!(
        find_test(&[helper, test], "checked"),
        Found::Test(" Backs README claim [C1].".into())
    );
    // A non-test helper of the same name elsewhere does not hide the test.
    let twin = "fn checked() {}\n";
    assert_eq!(
        find_test(&[twin, test], "checked"),
        Found::Test(" Backs README claim [C1].".into())
    );
}
