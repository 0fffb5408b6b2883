//! The event log's configuration: every limit it enforces, in one documented struct.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits and tuning of one event-log node. Every field has a safe default; unknown keys are
/// refused so a typo in a config file is an error, not a silently ignored setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventLogConfig {
    /// Largest encoded event accepted, in bytes (envelope included).
    pub max_event_bytes: usize,
    /// Most events in one `Append` (or one stream of an `AppendBatch`).
    pub max_events_per_append: usize,
    /// Most stream appends in one `AppendBatch`.
    pub max_appends_per_batch: usize,
    /// Most events one read returns; larger requested limits are refused.
    pub max_read_limit: u32,
    /// Events returned by a read that asks for limit 0.
    pub default_read_limit: u32,
    /// A group commit closes after this many events (one fsync for all of them)...
    pub group_commit_max_events: usize,
    /// ...or this many encoded bytes, whichever comes first.
    pub group_commit_max_bytes: usize,
    /// Append requests waiting for the writer; callers wait (backpressure) when it is full.
    pub write_queue_depth: usize,
    /// Replicated: raft entries proposed and not yet answered, at most. More lets the next
    /// entry gather while earlier ones replicate; each is smaller.
    pub raft_proposals_in_flight: usize,
    /// Batches buffered per subscriber before it counts as slow.
    pub subscriber_buffer_batches: usize,
    /// How long a subscriber may leave its buffer full before it is ended with
    /// `ResourceExhausted` (it resumes from its last checkpoint).
    pub slow_subscriber_timeout_ms: u64,
    /// the index's (redb) page cache, in bytes: the main term of the log's memory use.
    pub cache_bytes: u64,
}

impl Default for EventLogConfig {
    fn default() -> Self {
        EventLogConfig {
            max_event_bytes: 1024 * 1024,
            max_events_per_append: 10_000,
            max_appends_per_batch: 10_000,
            max_read_limit: 10_000,
            default_read_limit: 1_000,
            group_commit_max_events: 20_000,
            group_commit_max_bytes: 32 * 1024 * 1024,
            write_queue_depth: 4_096,
            raft_proposals_in_flight: 4,
            subscriber_buffer_batches: 16,
            slow_subscriber_timeout_ms: 5_000,
            cache_bytes: 32 * 1024 * 1024,
        }
    }
}

impl EventLogConfig {
    pub fn slow_subscriber_timeout(&self) -> Duration {
        Duration::from_millis(self.slow_subscriber_timeout_ms)
    }

    /// Refuses settings that cannot work, naming the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let positive = [
            ("max_event_bytes", self.max_event_bytes as u64),
            ("max_events_per_append", self.max_events_per_append as u64),
            ("max_appends_per_batch", self.max_appends_per_batch as u64),
            ("max_read_limit", u64::from(self.max_read_limit)),
            ("default_read_limit", u64::from(self.default_read_limit)),
            ("group_commit_max_events", self.group_commit_max_events as u64),
            ("group_commit_max_bytes", self.group_commit_max_bytes as u64),
            ("write_queue_depth", self.write_queue_depth as u64),
            ("raft_proposals_in_flight", self.raft_proposals_in_flight as u64),
            ("subscriber_buffer_batches", self.subscriber_buffer_batches as u64),
            ("slow_subscriber_timeout_ms", self.slow_subscriber_timeout_ms),
            ("cache_bytes", self.cache_bytes),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err((name.to_string(), "must be greater than 0".into()));
        }
        if self.default_read_limit > self.max_read_limit {
            return Err(("default_read_limit".into(), "must not exceed max_read_limit".into()));
        }
        Ok(())
    }
}
