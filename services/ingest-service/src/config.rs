//! `[ingest]` in Haven's configuration: the alert rules' windows, batching, and each school's
//! log sources with the listeners bound to them.
//!
//! ```toml
//! [ingest]
//! repeat_window_s = 600          # repeats and duplicate alerts are judged in this window
//! repeat_threshold = 3           # attempts on one category in the window that raise an alert
//! critical_ack_minutes = 15      # a critical alert escalates if not acknowledged by then
//! vulnerable_raise = true        # a vulnerable learner's breaches raise severity (ADR 0025)
//! [[ingest.sources]]
//! school_id = "kestrel-primary"
//! source_id = "fortigate-1"
//! format = "fortigate"           # absent: detected per line
//! timezone = "Europe/London"     # for formats whose times carry no offset
//! syslog_tcp = "0.0.0.0:6514"    # the listener is the school's binding: it writes for this school only
//! syslog_udp = "0.0.0.0:6514"
//! buffer = true                  # also take this school's batches off the NATS ingest buffer
//! # The TCP listener speaks TLS (RFC 5425; TLS 1.3 or 1.2), same framing; client_ca (optional) makes
//! # the school's system prove itself with a certificate signed by that CA.
//! tls = { cert = "/etc/haven/kestrel-syslog.pem", key = "/etc/haven/kestrel-syslog.key", client_ca = "/etc/haven/kestrel-ca.pem" }
//! ```
//! The NATS ingest buffer (`haven.ingest.<school>.<format>`, read when ingest runs with
//! `nats_url`) carries no binding of its own: a batch is read only for a school with a source
//! that says `buffer = true` (at most one per school), and written under that source.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Ingest's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub repeat_window_s: u64,
    pub repeat_threshold: u32,
    pub critical_ack_minutes: u64,
    /// Whether a vulnerable learner's breaches raise severity (looked-after, CP plan, SEND).
    pub vulnerable_raise: bool,
    /// Most lines appended as one batch.
    pub batch_lines: usize,
    /// How long a batch waits for more lines after its first.
    pub linger_ms: u64,
    /// Lines queued per source between its listeners and the log.
    pub queue_lines: usize,
    /// Longer syslog frames are skipped unread.
    pub max_line_bytes: usize,
    /// With `--demo` and no sources: whether the demo schools' invented filters send lines
    /// (off gives a demo whose log stands still, for tests that compare states).
    pub demo_feed: bool,
    pub sources: Vec<SourceSpec>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            repeat_window_s: 600,
            repeat_threshold: 3,
            critical_ack_minutes: 15,
            vulnerable_raise: true,
            batch_lines: 5_000,
            linger_ms: 20,
            queue_lines: 50_000,
            max_line_bytes: 64 * 1024,
            demo_feed: true,
            sources: Vec::new(),
        }
    }
}

/// One school's log source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub school_id: String,
    pub source_id: String,
    /// A format name (`haven ingest parse --help` lists them); absent: detect per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default = "london")]
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog_tcp: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog_udp: Option<SocketAddr>,
    /// Whether batches published for this school to the NATS ingest buffer are read as this
    /// source's lines (deny by default: a school without such a source has its batches refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub buffer: bool,
    /// The TCP listener speaks TLS with this certificate (absent: plain TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// A source's TLS: PEM files, read at start (a bad one stops the start, naming it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// The listener's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, a sender must present a certificate signed by one of these CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

fn london() -> String {
    "Europe/London".into()
}

impl IngestConfig {
    /// Checks every value; the error names the key (`ingest.sources[1].format`) and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let positive = [
            ("repeat_window_s", self.repeat_window_s),
            ("repeat_threshold", u64::from(self.repeat_threshold)),
            ("critical_ack_minutes", self.critical_ack_minutes),
            ("batch_lines", self.batch_lines as u64),
            ("queue_lines", self.queue_lines as u64),
            ("max_line_bytes", self.max_line_bytes as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err((format!("ingest.{key}"), "must be at least 1".into()));
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut buffered = std::collections::HashSet::new();
        for (index, source) in self.sources.iter().enumerate() {
            let key = |field: &str| format!("ingest.sources[{index}].{field}");
            haven_kernel::SchoolId::parse(&source.school_id).map_err(|e| (key("school_id"), e.to_string()))?;
            let id_ok = !source.source_id.is_empty()
                && source.source_id.len() <= 63
                && source.source_id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !id_ok {
                return Err((key("source_id"), "1 to 63 lowercase letters, digits or '-'".into()));
            }
            if !seen.insert((&source.school_id, &source.source_id)) {
                return Err((
                    key("source_id"),
                    format!("{} is configured twice for {}", source.source_id, source.school_id),
                ));
            }
            if let Some(format) = &source.format {
                format
                    .parse::<haven_ingest::SourceFormat>()
                    .map_err(|_| (key("format"), format!("unknown format {format:?}")))?;
            }
            jiff::tz::TimeZone::get(&source.timezone)
                .map_err(|_| (key("timezone"), "not an IANA timezone name".into()))?;
            if source.syslog_tcp.is_none() && source.syslog_udp.is_none() && !source.buffer {
                return Err((
                    key("syslog_tcp"),
                    "a source needs a syslog_tcp or syslog_udp listener, or buffer = true".into(),
                ));
            }
            if source.tls.is_some() && source.syslog_tcp.is_none() {
                return Err((key("tls"), "TLS is for a syslog_tcp listener; this source has none".into()));
            }
            if source.buffer && !buffered.insert(&source.school_id) {
                return Err((key("buffer"), format!("{} already has a source with buffer = true", source.school_id)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SourceSpec {
        SourceSpec {
            school_id: "oak".into(),
            source_id: "proxy-1".into(),
            format: Some("squid_native".into()),
            timezone: london(),
            syslog_tcp: Some("127.0.0.1:6514".parse().unwrap()),
            syslog_udp: None,
            buffer: false,
            tls: None,
        }
    }

    #[test]
    fn every_bad_value_is_named() {
        type Breaks = fn(&mut IngestConfig);
        let cases: [(Breaks, &str); 8] = [
            (|c| c.repeat_threshold = 0, "ingest.repeat_threshold"),
            (|c| c.sources[0].school_id = "Oak".into(), "ingest.sources[0].school_id"),
            (|c| c.sources[0].format = Some("smoke-signals".into()), "ingest.sources[0].format"),
            (|c| c.sources[0].timezone = "Mars/Olympus".into(), "ingest.sources[0].timezone"),
            (|c| c.sources[0].syslog_tcp = None, "ingest.sources[0].syslog_tcp"),
            (|c| c.sources.push(source()), "ingest.sources[1].source_id"),
            (
                |c| {
                    c.sources[0].buffer = true;
                    c.sources.push(SourceSpec { source_id: "collector".into(), ..c.sources[0].clone() });
                },
                "ingest.sources[1].buffer",
            ),
            (
                |c| {
                    c.sources[0].syslog_tcp = None;
                    c.sources[0].syslog_udp = Some("127.0.0.1:6514".parse().unwrap());
                    c.sources[0].tls = Some(TlsSpec { cert: "c.pem".into(), key: "k.pem".into(), client_ca: None });
                },
                "ingest.sources[0].tls",
            ),
        ];
        for (break_it, key) in cases {
            let mut config = IngestConfig { sources: vec![source()], ..IngestConfig::default() };
            assert_eq!(config.validate(), Ok(()));
            break_it(&mut config);
            assert_eq!(config.validate().unwrap_err().0, key);
        }
    }
}
