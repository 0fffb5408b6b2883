//! What the corpus and golden tests share: where the shared corpus is, how its two JSON
//! excerpts become the raw lines their vendors send, and one parser setup.

#![allow(dead_code)]

use std::path::PathBuf;

use haven_ingest::{LineParser, SourceConfig};
use haven_kernel::SchoolId;
use jiff::Timestamp;
use serde_json::{Value, json};

/// When the golden lines were "received": the year of year-less syslog times comes from it.
pub const RECEIVED_AT: &str = "2026-11-25T12:00:00Z";

pub fn received_at() -> Timestamp {
    RECEIVED_AT.parse().unwrap()
}

pub fn parser() -> LineParser {
    LineParser::new(SourceConfig::new(SchoolId::parse("oakfield-academy").unwrap()))
}

/// `services/ingest/corpus` (a copy of the shared corpus, with its sources and licences), or
/// `HAVEN_CORPUS_DIR`.
pub fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("HAVEN_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    assert!(dir.join("FORMATS.md").is_file(), "the shared corpus is not at {} (set HAVEN_CORPUS_DIR)", dir.display());
    dir
}

/// Every corpus file as `(folder/file, lines)`, JSON excerpts converted to raw lines.
pub fn corpus_files() -> Vec<(String, Vec<String>)> {
    let dir = corpus_dir();
    let mut files = Vec::new();
    let mut folders: Vec<_> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    folders.sort();
    for folder in folders {
        let mut paths: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let name = format!(
                "{}/{}",
                folder.file_name().unwrap().to_str().unwrap(),
                path.file_name().unwrap().to_str().unwrap()
            );
            let text = std::fs::read_to_string(&path).unwrap();
            let lines = match path.extension().and_then(|e| e.to_str()) {
                Some("md") => continue,
                Some("json") if name.starts_with("cisco-umbrella") => umbrella_csv_lines(&text),
                Some("json") if name.starts_with("zscaler") => common_security_log_cef_lines(&text),
                Some("json") => panic!("no conversion for {name}"),
                _ => text.lines().map(str::to_owned).collect(),
            };
            files.push((name, lines));
        }
    }
    files
}

/// The Umbrella excerpt is the proxy CSV keyed by its (v1/v2) column names; write each record
/// back as the CSV row Umbrella exports, in the documented column order.
fn umbrella_csv_lines(text: &str) -> Vec<String> {
    let records: Vec<Value> = serde_json::from_str(text).unwrap();
    let columns = [
        "Timestamp",
        "Identities",
        "Internal IP",
        "External IP",
        "Destination IP",
        "Content Type",
        "Verdict",
        "URL",
        "Referer",
        "userAgent",
        "statusCode",
        "requestSize",
        "responseSize",
        "responseBodySize",
        "SHA-SHA256",
        "Categories",
        "AVDetections",
        "PUAs",
        "AMP Disposition",
        "AMP Malware Name",
        "AMP Score",
        "Identity Types",
        "Blocked Categories",
    ];
    records
        .iter()
        .map(|record| {
            let cells: Vec<String> = columns
                .iter()
                .map(|column| {
                    let cell = match &record[column] {
                        Value::Null => String::new(),
                        Value::String(s) => s.clone(),
                        Value::Array(items) => {
                            items.iter().map(|i| i.as_str().unwrap_or_default()).collect::<Vec<_>>().join(",")
                        }
                        other => other.to_string(),
                    };
                    format!("\"{}\"", cell.replace('"', "\"\""))
                })
                .collect();
            cells.join(",")
        })
        .collect()
}

/// The Zscaler excerpt is Sentinel's CommonSecurityLog rows, made from CEF; write each back
/// as the CEF line its sender wrote (header from the device columns, extension from the
/// mapped columns and `AdditionalExtensions`).
fn common_security_log_cef_lines(text: &str) -> Vec<String> {
    let records: Vec<Value> = serde_json::from_str(text).unwrap();
    let keys = [
        ("DeviceAction", "act"),
        ("SourceIP", "src"),
        ("DestinationIP", "dst"),
        ("SourcePort", "spt"),
        ("DestinationPort", "dpt"),
        ("SourceUserName", "suser"),
        ("DestinationDnsDomain", "dhost"),
        ("RequestURL", "request"),
        ("DeviceExternalID", "deviceExternalId"),
    ];
    let text_of = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    records
        .iter()
        .map(|r| {
            let mut extension: Vec<String> = keys
                .iter()
                .filter(|(column, _)| !r[column].is_null())
                .map(|(column, key)| format!("{key}={}", text_of(&r[column]).replace('=', "\\=")))
                .collect();
            if let Some(extra) = r["AdditionalExtensions"].as_str() {
                extension.extend(extra.split(';').filter(|pair| !pair.is_empty()).map(str::to_owned));
            }
            format!(
                "<14>Mar 31 08:18:20 {} CEF:0|{}|{}|{}|{}|{}|{}|{}",
                text_of(&r["Computer"]),
                text_of(&r["DeviceVendor"]),
                text_of(&r["DeviceProduct"]),
                text_of(&r["DeviceVersion"]),
                text_of(&r["DeviceEventClassID"]),
                text_of(&r["Activity"]),
                text_of(&r["LogSeverity"]),
                extension.join(" ")
            )
        })
        .collect()
}

/// The synthetic samples as `(samples/file, lines)`.
pub fn sample_files() -> Vec<(String, Vec<String>)> {
    haven_ingest::samples::SYNTHETIC
        .iter()
        .map(|(name, text)| (format!("samples/{name}"), text.lines().map(str::to_owned).collect()))
        .collect()
}

/// One line's outcome as a JSON value: the breach, or the refusal with its format.
pub fn outcome(parser: &LineParser, line_number: usize, line: &str) -> Value {
    match parser.parse(line.as_bytes(), received_at()) {
        Ok(breach) => json!({"line": line_number, "breach": breach}),
        Err(error) => json!({"line": line_number, "refused": error}),
    }
}
