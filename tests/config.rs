//! Configuration precedence and refusals, through the real binary: defaults < file <
//! HAVEN_* < flags; unknown keys and bad values are refused naming them.

use std::process::{Command, Output};

fn haven(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
    command.args(args);
    // A developer's own HAVEN_* variables must not leak into the test.
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("HAVEN_")) {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

fn effective(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let output = haven(args, env);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn refusal(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = haven(args, env);
    assert_eq!(output.status.code(), Some(1));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn each_layer_overrides_the_one_below() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("haven.toml");
    std::fs::write(
        &file,
        "grpc_addr = \"127.0.0.1:1001\"\nhttp_addr = \"127.0.0.1:2001\"\nlog = \"warn\"\n[eventlog]\ncache_bytes = 1000\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();

    let defaults = effective(&["config"], &[]);
    assert_eq!(defaults["grpc_addr"], "127.0.0.1:7070");
    assert_eq!(defaults["http_addr"], "127.0.0.1:8080");
    assert_eq!(defaults["data_dir"], "./haven-data");

    let from_file = effective(&["config", "--config", file], &[]);
    assert_eq!(from_file["grpc_addr"], "127.0.0.1:1001");
    assert_eq!(from_file["eventlog"]["cache_bytes"], 1000);
    assert_eq!(from_file["data_dir"], "./haven-data", "unset keys keep their defaults");

    let env = [("HAVEN_GRPC_ADDR", "127.0.0.1:1002"), ("HAVEN_EVENTLOG__CACHE_BYTES", "2000")];
    let from_env = effective(&["config", "--config", file], &env);
    assert_eq!(from_env["grpc_addr"], "127.0.0.1:1002", "environment beats the file");
    assert_eq!(from_env["http_addr"], "127.0.0.1:2001", "the file still sets what env does not");
    assert_eq!(from_env["eventlog"]["cache_bytes"], 2000, "nested keys with __");

    let from_flags = effective(&["config", "--config", file, "--grpc-addr", "127.0.0.1:1003", "--log", "debug"], &env);
    assert_eq!(from_flags["grpc_addr"], "127.0.0.1:1003", "flags beat the environment");
    assert_eq!(from_flags["log"], "debug");

    let file_from_env = effective(&["config"], &[("HAVEN_CONFIG", file)]);
    assert_eq!(file_from_env["grpc_addr"], "127.0.0.1:1001", "HAVEN_CONFIG names the file");
}

#[test]
fn unknown_keys_and_bad_values_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "grpc_adr = \"127.0.0.1:1\"\n").unwrap();
    let message = refusal(&["up", "--config", file.to_str().unwrap()], &[]);
    assert!(message.contains("grpc_adr"), "{message}");

    let message = refusal(&["config"], &[("HAVEN_GRPC_PORT", "1")]);
    assert!(message.contains("GRPC_PORT") || message.contains("grpc_port"), "{message}");

    let message = refusal(&["config"], &[("HAVEN_EVENTLOG__CACHE_BYTES", "lots")]);
    assert!(message.contains("CACHE_BYTES"), "{message}");

    let message = refusal(&["config"], &[("HAVEN_EVENTLOG__CACHE_BYTES", "0")]);
    assert!(message.contains("eventlog.cache_bytes"), "{message}");

    let message = refusal(&["config", "--log", "not a=filter=at all"], &[]);
    assert!(message.contains("log filter"), "{message}");

    let message = refusal(&["config", "--config", "/nonexistent/haven.toml"], &[]);
    assert!(message.contains("/nonexistent/haven.toml"), "{message}");
}

#[test]
fn nats_url_is_optional_and_checked() {
    assert_eq!(effective(&["config"], &[])["nats_url"], serde_json::Value::Null);
    let set = effective(&["config", "--nats", "nats://127.0.0.1:4222"], &[]);
    assert_eq!(set["nats_url"], "nats://127.0.0.1:4222");
    let refused = refusal(&["config"], &[("HAVEN_NATS_URL", "127.0.0.1:4222")]);
    assert!(refused.contains("nats_url"), "{refused}");
}

#[test]
fn the_otlp_endpoint_is_optional_and_checked() {
    assert_eq!(effective(&["config"], &[])["otlp_endpoint"], serde_json::Value::Null, "no spans exported");
    let set = effective(&["config"], &[("HAVEN_OTLP_ENDPOINT", "http://otel-collector:4317")]);
    assert_eq!(set["otlp_endpoint"], "http://otel-collector:4317");
    for bad in ["otel-collector:4317", "https://otel-collector:4317"] {
        let refused = refusal(&["config"], &[("HAVEN_OTLP_ENDPOINT", bad)]);
        assert!(refused.contains("otlp_endpoint") && refused.contains("HAVEN_OTLP_ENDPOINT"), "{refused}");
    }
}

#[test]
fn the_escalation_time_is_configurable_and_checked() {
    assert_eq!(effective(&["config"], &[])["incidents"]["escalate_after_s"], 900, "15 minutes by default");
    let set = effective(&["config"], &[("HAVEN_INCIDENTS__ESCALATE_AFTER_S", "600")]);
    assert_eq!(set["incidents"]["escalate_after_s"], 600);
    let refused = refusal(&["config"], &[("HAVEN_INCIDENTS__ESCALATE_AFTER_S", "5")]);
    assert!(refused.contains("incidents.escalate_after_s"), "{refused}");
}

/// The `haven.toml` block of a Kubernetes ConfigMap manifest (its indented `haven.toml: |`).
fn configmap_toml(manifest: &str) -> String {
    let mut lines = manifest.lines().skip_while(|line| line.trim() != "haven.toml: |").skip(1);
    let first = lines.next().expect("haven.toml has content");
    let indent = first.len() - first.trim_start().len();
    std::iter::once(first)
        .chain(lines.take_while(|line| line.trim().is_empty() || line.len() - line.trim_start().len() >= indent))
        .map(|line| line.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_kubernetes_config_map_is_a_valid_configuration() {
    let manifest = include_str!("../infra/k8s/base/config.yaml");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("haven.toml");
    std::fs::write(&file, configmap_toml(manifest)).unwrap();
    let config = effective(&["--config", file.to_str().unwrap(), "config"], &[]);
    let sources = config["ingest"]["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1, "{config}");
    assert_eq!(sources[0]["syslog_tcp"], "0.0.0.0:6514", "the port the ingest manifests expose");
    assert_eq!(config["ingest"]["demo_feed"], false);
    assert_eq!(config["incidents"]["time_zone"], "Europe/London");
}
