//! `haven ingest parse` on real corpus files and on a file with framing and encoding trouble:
//! one JSON line per line on stdout, the summary on stderr, nothing written anywhere.

use std::path::PathBuf;
use std::process::{Command, Output};

fn corpus(file: &str) -> PathBuf {
    let dir = std::env::var_os("HAVEN_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ingest/corpus"));
    let path = dir.join(file);
    assert!(path.is_file(), "no corpus file {} (set HAVEN_CORPUS_DIR)", path.display());
    path
}

fn parse(args: &[&str], files: &[PathBuf]) -> Output {
    let output =
        Command::new(env!("CARGO_BIN_EXE_haven")).args(["ingest", "parse"]).args(args).args(files).output().unwrap();
    assert!(output.status.success(), "haven ingest parse failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(output.stdout.clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn corpus_files_give_one_json_line_per_line_and_a_summary() {
    let squid = corpus("squid-native/datadog_squid_native.log");
    let pan = corpus("pan-os-csv/cribl_pan_threat.log");
    let guard = corpus("squidguard/usiem-squid_docker_logs.log");
    let output = parse(&["--school", "oakfield-academy"], &[squid.clone(), pan, guard]);
    let lines = json_lines(&output);
    // 13 + 1 + 12 (two blank lines skipped).
    assert_eq!(lines.len(), 26);
    let first = &lines[0];
    assert_eq!(first["file"], squid.display().to_string());
    assert_eq!(first["line"], 1);
    assert_eq!(first["breach"]["school_id"], "oakfield-academy");
    assert_eq!(first["breach"]["source_format"], "squid_native");
    assert_eq!(first["breach"]["host"], "www.datadog.com");
    assert_eq!(first["breach"]["occurred_at"], "2019-10-11T09:04:14.576Z");
    // The query string never reaches the output.
    assert_eq!(lines[1]["breach"]["url"], "http://datadog.com/test/");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("queryParam1"));
    assert_eq!(lines[11]["refused"]["error"]["reason"], "missing_field");
    assert_eq!(lines[11]["refused"]["error"]["field"], "url");
    assert_eq!(lines[13]["breach"]["source_format"], "pan_os");
    assert_eq!(lines[13]["breach"]["action"], "flagged");
    let guard_line = lines.iter().find(|l| l["breach"]["source_format"] == "squidguard").unwrap();
    assert_eq!(guard_line["breach"]["vendor_category"], "additional");

    let summary = String::from_utf8(output.stderr).unwrap();
    assert!(summary.contains("26 lines, 24 parsed, 2 quarantined, 2 blank skipped"), "{summary}");
    assert!(summary.contains("parsed       squid_native           18"), "{summary}");
    assert!(summary.contains("parsed       squidguard              5"), "{summary}");
    assert!(summary.contains("quarantined  squid_native            1  missing_field"), "{summary}");
    assert!(summary.contains("quarantined  squid_native            1  not_a_web_event"), "{summary}");
}

#[test]
fn a_configured_format_octet_counting_bad_bytes_and_long_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.log");
    let good = "<14>Nov 25 09:15:02 proxy 1795598102.000      0 10.20.1.15 TCP_DENIED/403 3903 GET http://casino.example/?q=1 - HIER_NONE/- text/html";
    let mut feed = format!("{} {good}", good.len()).into_bytes();
    feed.extend_from_slice(
        b"\n1795598103.000 0 10.20.1.15 TCP_MISS/200 10 GET http://a.example/ - HIER_DIRECT/1.2.3.4 -\n",
    );
    feed.extend_from_slice(
        b"1795598104.000 0 10.20.1.15 TCP_MISS/200 10 GET http://\xff.example/ - HIER_DIRECT/1.2.3.4 -\n",
    );
    feed.extend_from_slice(format!("{}\n", "x".repeat(300)).as_bytes());
    feed.extend_from_slice(b"CEF:0|a|b|1|2|n|3|act=blocked request=http://x.example/\n");
    std::fs::write(&path, feed).unwrap();

    let output = parse(&["--format", "squid-native", "--max-line-bytes", "256"], &[path]);
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["breach"]["host"], "casino.example");
    assert_eq!(lines[0]["breach"]["action"], "blocked");
    assert_eq!(lines[1]["breach"]["action"], "allowed");
    assert_eq!(lines[2]["refused"]["error"]["reason"], "invalid_encoding");
    assert_eq!(lines[3]["refused"]["error"]["reason"], "line_too_long");
    // Configured as Squid, a CEF line is refused as a Squid line, not read as CEF.
    assert_eq!(lines[4]["refused"]["format"], "squid_native");
    let summary = String::from_utf8(output.stderr).unwrap();
    assert!(summary.contains("5 lines, 2 parsed, 3 quarantined"), "{summary}");
}

#[test]
fn bad_flags_are_refused_by_name() {
    let output = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["ingest", "parse", "--format", "squid", "x.log"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--format"));
    let output = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["ingest", "parse", "--timezone", "Mars/Olympus", "x.log"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--timezone"));
}
