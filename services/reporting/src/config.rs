//! The reporting service's limits: every read it does is bounded.

/// Limits on what one request may read or return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest page of history events (`GetStreamHistory.limit`).
    pub max_read_limit: u32,
    /// Page when the request says 0.
    pub default_read_limit: u32,
    /// Largest page of actions or accesses.
    pub max_page_size: u32,
    /// Page when the request says 0.
    pub default_page_size: u32,
    /// Events of `$all` one audit scan examines before it returns a page token to go on from.
    pub max_scan_events: u64,
    /// Events one `VerifyChain` call checks; the response says where to continue.
    pub max_verify_events: u64,
    /// Most weeks a trend covers.
    pub max_trend_weeks: u32,
    /// Weeks when the request says 0.
    pub default_trend_weeks: u32,
    /// Most hours a dashboard window covers (its hour-by-hour series).
    pub max_dashboard_hours: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_read_limit: 1_000,
            default_read_limit: 100,
            max_page_size: 1_000,
            default_page_size: 100,
            max_scan_events: 200_000,
            max_verify_events: 1_000_000,
            max_trend_weeks: 104,
            default_trend_weeks: 12,
            max_dashboard_hours: 24 * 92,
        }
    }
}

impl Limits {
    /// `requested` bounded to `1..=max`, with 0 meaning `default`.
    pub fn page(requested: u32, default: u32, max: u32, field: &str) -> Result<u32, crate::Error> {
        match requested {
            0 => Ok(default),
            n if n <= max => Ok(n),
            n => Err(crate::Error::invalid(field, format!("{n} is above the limit of {max}"))),
        }
    }
}
