//! Golden files: every corpus file and every synthetic sample, parsed line by line, compared
//! with the checked-in JSON lines in `tests/golden/`. A change in what Haven makes of any line
//! — a field, a category, a refusal's reason — shows up here as a diff. To accept a change on
//! purpose: `UPDATE_GOLDEN=1 cargo nextest run -p haven-ingest --test golden`, then read the
//! diff before committing it.

mod support;

use std::path::PathBuf;

fn golden_path(name: &str) -> PathBuf {
    let file = name.replace('/', "__");
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{file}.jsonl"))
}

fn check(files: Vec<(String, Vec<String>)>) {
    let parser = support::parser();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for (name, lines) in files {
        let actual: String = lines
            .iter()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, line)| support::outcome(&parser, index + 1, line).to_string() + "\n")
            .collect();
        let path = golden_path(&name);
        if update {
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("no golden file {} (run with UPDATE_GOLDEN=1)", path.display()));
        for (number, (want, got)) in expected.lines().zip(actual.lines()).enumerate() {
            if want != got {
                mismatches.push(format!("{name}, output line {}:\n  want {want}\n  got  {got}", number + 1));
            }
        }
        if expected.lines().count() != actual.lines().count() {
            mismatches.push(format!(
                "{name}: {} golden lines, {} parsed",
                expected.lines().count(),
                actual.lines().count()
            ));
        }
    }
    assert!(mismatches.is_empty(), "golden mismatches:\n{}", mismatches.join("\n"));
}

#[test]
fn corpus_matches_its_golden_files() {
    check(support::corpus_files());
}

#[test]
fn synthetic_samples_match_their_golden_files() {
    check(support::sample_files());
}
