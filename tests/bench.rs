//! `haven bench` runs end to end and reports what it measured. These tests check the counts
//! and the shape of the report, never the speed (speeds live in docs/benchmarks.md).

use std::process::Command;

fn bench(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_haven")).arg("bench").args(args).arg("--json").output().unwrap();
    assert!(output.status.success(), "haven bench {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("one JSON object on stdout")
}

#[test]
fn append_reports_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let report = bench(&[
        "append",
        "--clients",
        "4",
        "--events-per-append",
        "5",
        "--total-events",
        "400",
        "--streams",
        "8",
        "--expected",
        "exact",
        "--data-dir",
        data_dir,
    ]);
    assert_eq!(report["events"], 400);
    assert_eq!(report["appends"], 80);
    assert_eq!(report["payload_total_bytes"], 400 * 256);
    assert!(report["latency_us_p50"].as_u64().unwrap() <= report["latency_us_max"].as_u64().unwrap());
    assert!(report["disk_bytes"].as_u64().unwrap() > 0);

    // The events really are in the log: a second run on the same directory reads them back.
    let read = bench(&["read", "--events", "400", "--page", "64", "--data-dir", data_dir]);
    assert_eq!(read["events"], 400, "the read bench found exactly what the append bench wrote");
}

#[test]
fn bad_bench_flags_are_refused_by_name() {
    let output =
        Command::new(env!("CARGO_BIN_EXE_haven")).args(["bench", "append", "--clients", "0"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--clients"));
}

#[test]
fn parse_reports_the_mix_it_parsed() {
    let corpus = std::env::var("HAVEN_CORPUS_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../ingest/corpus").to_owned());
    let report = bench(&["parse", "--corpus", &corpus, "--threads", "2", "--seconds", "0.2"]);
    let samples: usize = haven_ingest::samples::SYNTHETIC
        .iter()
        .map(|(_, text)| text.lines().filter(|line| !line.trim().is_empty()).count())
        .sum();
    // The corpus's .log files hold 91 non-blank lines.
    assert_eq!(report["mix_lines"], 91 + samples);
    assert_eq!(report["threads"], 2);
    let parsed = report["mix_parsed"].as_u64().unwrap();
    assert!(parsed > 0 && parsed < report["mix_lines"].as_u64().unwrap());
    let lines = report["lines"].as_u64().unwrap();
    assert!(lines > 0 && lines.is_multiple_of(1_024), "each thread counts whole rounds of 1 024 lines: {lines}");
    assert!(report["lines_per_second"].as_f64().unwrap() > 0.0);
    if cfg!(target_os = "linux") {
        let cpu = report["cpu_seconds"].as_f64().unwrap();
        assert!(cpu > 0.0 && cpu <= 2.0 * report["seconds"].as_f64().unwrap() + 0.05, "{cpu}");
    }
}

#[test]
fn a_rolling_restart_under_writes_moves_leadership_and_loses_nothing() {
    let report = bench(&["rolling-restart", "--rounds", "1", "--writers", "2", "--down-ms", "1000"]);
    let restarts = report["restarts"].as_array().unwrap();
    let nodes: Vec<u64> = restarts.iter().map(|r| r["node"].as_u64().unwrap()).collect();
    assert_eq!(nodes, vec![3, 2, 1], "highest ordinal first, every node once");
    assert!(restarts.iter().all(|r| r["stopped_gracefully"] == true), "{report}");
    let leader_stops: Vec<_> = restarts.iter().filter(|r| r["was_leader"] == true).collect();
    assert!(!leader_stops.is_empty(), "the leader is restarted too: {report}");
    for restart in leader_stops {
        assert_ne!(restart["leader_after"], restart["node"], "another node took over while it was down: {report}");
    }
    assert!(report["acknowledged"].as_u64().unwrap() > 0);
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["duplicated"], 0, "{report}");
}

/// A small run of `bench catchup`: the fourth node reaches everything the leader had when it
/// was added (the bench fails otherwise) and is promoted; the writers ran before and during.
#[test]
fn catchup_adds_a_fourth_node_under_writes() {
    let report =
        bench(&["catchup", "--events", "3000", "--payload-bytes", "64", "--writers", "2", "--baseline-seconds", "1"]);
    assert_eq!(report["events"], 3000, "{report}");
    assert!(report["catch_up_seconds"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["before"]["appends"].as_u64().unwrap() > 0, "writes flowed before the node was added: {report}");
    assert!(report["promote_ms"].as_f64().is_some(), "{report}");
}

#[test]
fn query_rebuilds_the_projection_and_times_every_query() {
    let report = bench(&[
        "query",
        "--breaches",
        "20000",
        "--cases",
        "200",
        "--schools",
        "5",
        "--days",
        "120",
        "--subjects",
        "500",
        "--batch",
        "256",
        "--samples",
        "3",
    ]);
    assert_eq!(report["bench"], "query");
    // Every breach was counted once, whichever batch it arrived in.
    assert_eq!(report["breaches_counted"], 20_000);
    // 5 schools, 20 000 breaches, 200 cases (opened and one action each), and the alerts,
    // acknowledgements, referrals, outcomes and closures generated with them.
    let events = report["events"].as_u64().unwrap();
    assert!(events > 5 + 20_000 + 2 * 200, "{events}");
    let open = report["open_cases"].as_u64().unwrap();
    assert!(open > 0 && open < 200, "about half the cases are closed: {open}");
    assert!(report["rebuild_events_per_second"].as_f64().unwrap() > 0.0);
    let queries = report["queries"].as_array().unwrap();
    let names: Vec<&str> = queries.iter().map(|query| query["query"].as_str().unwrap()).collect();
    for name in ["dashboard trust 7d", "dashboard school 92d", "trends trust 52w", "trends school 8w"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    for query in queries {
        assert_eq!(query["samples"], 3);
        assert!(query["p50_us"].as_u64().unwrap() <= query["max_us"].as_u64().unwrap());
    }
    // The trust-wide dashboards count breaches in their window: a longer window, more breaches.
    let answer = |name: &str| queries.iter().find(|query| query["query"] == name).unwrap()["answer"].as_u64().unwrap();
    assert!(answer("dashboard trust 7d") > 0);
    assert!(answer("dashboard trust 7d") < answer("dashboard trust 28d"));
    assert!(answer("dashboard trust 92d") < 20_000, "the 92-day window holds only part of 120 days");
    assert_eq!(answer("trends trust 52w"), 20_000, "52 weeks cover the whole 120 days");
}
