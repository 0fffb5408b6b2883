//! The vendor log formats ingest reads, mirroring `haven.v1.SourceFormat`. Layouts and quirks:
//! `shared/corpus/FORMATS.md`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// Squid `logformat squid`: UTC epoch, no category.
    SquidNative,
    /// Squid `logformat combined` / `common`: Apache-style, with an offset.
    SquidCombined,
    /// squidGuard block log: category in `Request(...)`, local time without a zone.
    Squidguard,
    /// Barracuda Web Security Gateway syslog, or CloudGen Firewall web-log streaming.
    Barracuda,
    /// FortiGate / FortiOS key=value.
    Fortigate,
    /// PAN-OS syslog CSV (THREAT/url entries are the web events).
    PanOs,
    /// Sophos UTM, Sophos Firewall or Sophos Web Appliance; the variant is found per line.
    Sophos,
    /// Cisco Umbrella proxy log CSV.
    CiscoUmbrella,
    /// Zscaler NSS web feed in name=value form.
    ZscalerNss,
    /// ArcSight Common Event Format from any vendor.
    Cef,
    /// IBM Log Event Extended Format 1.0 / 2.0.
    Leef,
    /// Haven's own JSON object per line, for collectors that normalise upstream.
    JsonLines,
}

impl SourceFormat {
    pub const ALL: [SourceFormat; 12] = [
        SourceFormat::SquidNative,
        SourceFormat::SquidCombined,
        SourceFormat::Squidguard,
        SourceFormat::Barracuda,
        SourceFormat::Fortigate,
        SourceFormat::PanOs,
        SourceFormat::Sophos,
        SourceFormat::CiscoUmbrella,
        SourceFormat::ZscalerNss,
        SourceFormat::Cef,
        SourceFormat::Leef,
        SourceFormat::JsonLines,
    ];

    /// The stable snake_case name (JSON output, `--format`, metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::SquidNative => "squid_native",
            SourceFormat::SquidCombined => "squid_combined",
            SourceFormat::Squidguard => "squidguard",
            SourceFormat::Barracuda => "barracuda",
            SourceFormat::Fortigate => "fortigate",
            SourceFormat::PanOs => "pan_os",
            SourceFormat::Sophos => "sophos",
            SourceFormat::CiscoUmbrella => "cisco_umbrella",
            SourceFormat::ZscalerNss => "zscaler_nss",
            SourceFormat::Cef => "cef",
            SourceFormat::Leef => "leef",
            SourceFormat::JsonLines => "json_lines",
        }
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown format name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown source format (expected one of: {})", SourceFormat::ALL.map(SourceFormat::as_str).join(", "))]
pub struct UnknownFormat;

impl FromStr for SourceFormat {
    type Err = UnknownFormat;

    /// Accepts the snake_case name or the same with `-` (`squid-native`).
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let wanted = raw.trim().replace('-', "_").to_ascii_lowercase();
        SourceFormat::ALL.into_iter().find(|format| format.as_str() == wanted).ok_or(UnknownFormat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for format in SourceFormat::ALL {
            assert_eq!(format.as_str().parse::<SourceFormat>(), Ok(format));
            assert_eq!(format.as_str().replace('_', "-").parse::<SourceFormat>(), Ok(format));
        }
        let mut names = SourceFormat::ALL.map(SourceFormat::as_str).to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SourceFormat::ALL.len());
        assert!("squid".parse::<SourceFormat>().is_err());
    }
}
