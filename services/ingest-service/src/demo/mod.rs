//! The demo feed (`haven up --demo`): each demo school's invented web filter, each of another
//! vendor, sends its log into one of ingest's real inputs — FortiGate over syslog TCP, Sophos
//! over syslog UDP, Cisco Umbrella over gRPC (`SubmitBreaches`, as the school's system with a
//! token for its credential), PAN-OS over syslog TCP, Barracuda through the NATS ingest buffer
//! (syslog TCP when ingest runs without NATS) — at a rate shaped like a school day, with a
//! plausible category mix that includes the occasional critical line (self-harm, the IWF list).
//! From the first seconds every school sends a few opening lines: a self-harm search and a
//! burst of repeated gambling attempts, so the DSL's alert queue is never empty in a demo.
//! Some opening lines name the demo learners' invented network logins, and one school's
//! network reports a lease, so alerts are attributed to learners and one vulnerable learner's
//! first attempt is raised (ADR 0025). `haven bench ingest` uses the same [`Generator`].
//! Addresses are from the private 10.0.0.0/8 plan of a school network; hosts are `.example`.
//! Nothing here is real.
//!
//! ```text
//!  Generator (vendor, school octet, pupils): mix ─▶ lines::line(vendor, request) ─▶ feed
//!  feed, every 250 ms: rate_per_thousand_pupils × pupils lines ─▶ the school's input
//!     (undelivered lines are kept, at most MAX_PENDING_LINES, and sent again next tick)
//! ```

mod feed;
pub mod lines;

pub use feed::{DemoInput, DemoSchool, GrpcSystem, run};
pub use lines::{Kind, Request, Vendor, device_ip, fortigate_line, fortigate_user_line, line};

use jiff::Timestamp;

/// (kind, weight per 10 000 lines, invented host) of the mix.
const MIX: [(Kind, u32, &str); 13] = [
    (Kind::Games, 2_590, "arcade.example"),
    (Kind::Social, 2_000, "chatter.example"),
    (Kind::Streaming, 1_500, "clips.example"),
    (Kind::ProxyAvoidance, 900, "unblock-me.example"),
    (Kind::Gambling, 800, "lucky-spins.example"),
    (Kind::Pornography, 600, "adult-site.example"),
    (Kind::Malware, 500, "free-prizes.example"),
    (Kind::Drugs, 300, "party-pills.example"),
    (Kind::Violence, 300, "fight-vids.example"),
    (Kind::Discrimination, 250, "hate-forum.example"),
    (Kind::Extremism, 150, "radical-voice.example"),
    (Kind::SelfHarm, 100, "dark-thoughts.example"),
    (Kind::ChildAbuse, 10, "iwf-listed.example"),
];

/// The input a demo school's filter reaches ingest by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    SyslogTcp,
    SyslogUdp,
    /// `Ingest/SubmitBreaches` with the token of the school's system.
    Grpc,
    /// The NATS ingest buffer (syslog TCP when ingest runs without NATS).
    Buffer,
}

/// Each demo school's filter: (school, vendor, input). The order is identity's
/// `DEMO_SCHOOLS`', whose index gives the school's octet (`10.<20 + index>.…`).
pub const DEMO_FEEDS: [(&str, Vendor, InputKind); 5] = [
    ("kestrel-primary", Vendor::Fortigate, InputKind::SyslogTcp),
    ("marram-primary", Vendor::Sophos, InputKind::SyslogUdp),
    ("heronsgate-academy", Vendor::CiscoUmbrella, InputKind::Grpc),
    ("saltmarsh-high", Vendor::PanOs, InputKind::SyslogTcp),
    ("willowbrook-school", Vendor::Barracuda, InputKind::Buffer),
];

/// The source id a demo school's filter writes under (`fortigate-1`, `cisco-umbrella-1`).
pub fn source_id(vendor: Vendor) -> String {
    format!("{}-1", vendor.format().as_str().replace('_', "-"))
}

/// The second octet of the demo school at `index` of [`DEMO_FEEDS`].
pub fn school_octet(index: usize) -> u8 {
    20 + index as u8
}

/// A small deterministic generator (splitmix64): the demo needs variety, not secrecy.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Lines per second per 1 000 pupils at `at` (London time): busy in lessons, a lunchtime
/// peak, a trickle in the evening and at night.
pub fn rate_per_thousand_pupils(at: Timestamp) -> f64 {
    let local = at.to_zoned_datetime(jiff::tz::TimeZone::get("Europe/London").expect("bundled tz"));
    let weekend = matches!(local.weekday(), jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday);
    let hour = local.hour();
    let school_day = match hour {
        8 => 1.0,
        9..=11 | 13..=14 => 2.0,
        12 => 3.0,
        15 => 1.5,
        16..=21 => 0.3,
        _ => 0.05,
    };
    if weekend { school_day * 0.1 } else { school_day }
}

/// One school's filter: lines in its vendor's format, drawn from the mix, from the school's
/// devices; deterministic for a seed.
#[derive(Debug)]
pub struct Generator {
    rng: Rng,
    vendor: Vendor,
    school_octet: u8,
    pupils: u32,
    session: u64,
}

impl Generator {
    pub fn new(vendor: Vendor, school_octet: u8, pupils: u32, seed: u64) -> Self {
        Generator { rng: Rng(seed), vendor, school_octet, pupils: pupils.max(1), session: 70_000 }
    }

    pub fn vendor(&self) -> Vendor {
        self.vendor
    }

    /// The next line of the mix, at `at`.
    pub fn next_line(&mut self, at: Timestamp) -> String {
        let pick = self.rng.below(10_000) as u32;
        let mut sum = 0;
        let (kind, _, host) = MIX
            .iter()
            .find(|(_, weight, _)| {
                sum += weight;
                pick < sum
            })
            .copied()
            .unwrap_or(MIX[0]);
        let device = self.rng.below(u64::from(self.pupils)) as u32;
        self.line(at, device, kind, host, None)
    }

    fn line(&mut self, at: Timestamp, device: u32, kind: Kind, host: &str, user: Option<&str>) -> String {
        self.session += 1;
        let request = Request { at, school_octet: self.school_octet, device, kind, host, session: self.session, user };
        line(self.vendor, &request)
    }

    /// The first lines of a demo: at Kestrel Lane an invented learner (signed in as
    /// `texample`) searches for self-harm content (a critical alert naming the learner) and
    /// another, with special educational needs (`nsample`), tries a gambling site once (a
    /// medium alert at once, raised for a vulnerable learner); at Marram Fields an unknown
    /// device tries a gambling site again and again (a repeated-attempts alert); at Heronsgate
    /// the laptop leased to a learner on a child-protection plan reaches a drugs site
    /// (attributed by the lease, raised); Saltmarsh's filter blocks an adult site and
    /// Willowbrook's a proxy, so every school's feed shows at once.
    pub fn opening(&mut self, school_id: &str, at: Timestamp) -> Vec<String> {
        match school_id {
            "kestrel-primary" => vec![
                self.line(at, 17, Kind::SelfHarm, "dark-thoughts.example", Some("texample")),
                self.line(at, 23, Kind::Gambling, "lucky-spins.example", Some("NSample")),
            ],
            "marram-primary" => {
                (0..3).map(|_| self.line(at, 42, Kind::Gambling, "lucky-spins.example", None)).collect()
            }
            "heronsgate-academy" => vec![self.line(at, 31, Kind::Drugs, "party-pills.example", None)],
            "saltmarsh-high" => vec![self.line(at, 8, Kind::Pornography, "adult-site.example", None)],
            "willowbrook-school" => vec![self.line(at, 5, Kind::ProxyAvoidance, "unblock-me.example", None)],
            _ => Vec::new(),
        }
    }
}

/// The demo's one lease: a Heronsgate laptop (the third demo school, octet 22), device 31,
/// signed in with an invented learner's login from an hour ago for the school day.
pub fn demo_leases(now: Timestamp) -> (&'static str, Vec<haven_proto::v1::DeviceLease>) {
    let at =
        |hours: i64| crate::pipeline::to_proto(now.checked_add(jiff::SignedDuration::from_hours(hours)).unwrap_or(now));
    let lease = haven_proto::v1::DeviceLease {
        ip: device_ip(22, 31),
        network_login: "linvented".into(),
        from: Some(at(-1)),
        until: Some(at(9)),
        ..Default::default()
    };
    ("heronsgate-academy", vec![lease])
}

#[cfg(test)]
mod tests {
    use haven_ingest::{Action, Category, LineParser, SourceConfig};

    use super::*;

    fn parser(vendor: Option<Vendor>) -> LineParser {
        let mut config = SourceConfig::new(haven_kernel::SchoolId::parse("kestrel-primary").unwrap());
        config.format = vendor.map(Vendor::format);
        config.zone = jiff::tz::TimeZone::get("Europe/London").unwrap();
        LineParser::new(config)
    }

    /// Haven's category for a kind as `vendor` labels it; `None` for the allowed kinds, which
    /// vendors file under categories of their own (Haven's `other`).
    fn expected(vendor: Vendor, kind: Kind) -> Option<Category> {
        Some(match kind {
            Kind::Games | Kind::Social | Kind::Streaming => return None,
            Kind::ProxyAvoidance | Kind::Malware => Category::MalwareHacking,
            Kind::Gambling => Category::Gambling,
            Kind::Pornography => Category::Pornography,
            Kind::Drugs => Category::Drugs,
            Kind::Violence => Category::Violence,
            // PAN-DB has no hate category: such sites are `questionable`.
            Kind::Discrimination if vendor == Vendor::PanOs => Category::Other,
            Kind::Discrimination if vendor == Vendor::Fortigate => Category::Discrimination,
            Kind::Discrimination => Category::HateSpeech,
            Kind::Extremism => Category::Extremism,
            Kind::SelfHarm => Category::SelfHarm,
            Kind::ChildAbuse => Category::IllegalChildAbuseIwf,
        })
    }

    #[test]
    fn every_vendors_lines_parse_and_are_detected_into_the_right_category_action_and_user() {
        // A summer time (BST) and a winter one: Sophos and PAN-OS write local time.
        for at in [Timestamp::from_second(1_784_000_000).unwrap(), Timestamp::from_second(1_796_000_000).unwrap()] {
            for vendor in Vendor::ALL {
                let (named, detected) = (parser(Some(vendor)), parser(None));
                for (kind, _, host) in MIX {
                    for user in [None, Some("texample")] {
                        let request = Request { at, school_octet: 20, device: 399, kind, host, session: 7, user };
                        let line = line(vendor, &request);
                        let parsed = named
                            .parse(line.as_bytes(), at)
                            .unwrap_or_else(|e| panic!("{vendor:?} {kind:?}: {e}: {line}"));
                        assert_eq!(parsed.school_id.as_str(), "kestrel-primary");
                        assert_eq!(parsed.occurred_at, at, "{line}");
                        assert_eq!(parsed.host, host, "{line}");
                        assert_eq!(parsed.client_ip.unwrap().to_string(), "10.20.2.209", "{line}");
                        assert_eq!(parsed.action == Action::Blocked, kind.blocked(), "{line}");
                        assert_eq!(parsed.action == Action::Allowed, !kind.blocked(), "{line}");
                        if let Some(category) = expected(vendor, kind) {
                            assert_eq!(parsed.category, category, "{line}");
                        }
                        let reported = parsed.user.as_deref().unwrap_or("");
                        assert_eq!(reported.contains("texample"), user.is_some(), "{line}");
                        let found =
                            detected.parse(line.as_bytes(), at).unwrap_or_else(|e| panic!("{vendor:?}: {e}: {line}"));
                        assert_eq!(found.source_format, vendor.format(), "detected: {line}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_mix_is_mostly_allowed_with_the_occasional_critical_line() {
        assert_eq!(MIX.iter().map(|(_, weight, _)| weight).sum::<u32>(), 10_000);
        let mut generator = Generator::new(Vendor::PanOs, 23, 947, 1);
        let parser = parser(Some(Vendor::PanOs));
        let at = Timestamp::from_second(1_796_000_000).unwrap();
        let (mut allowed, mut critical) = (0, 0);
        for _ in 0..20_000 {
            let line = generator.next_line(at);
            let parsed = parser.parse(line.as_bytes(), at).unwrap();
            allowed += usize::from(parsed.action == Action::Allowed);
            critical += usize::from(matches!(parsed.category, Category::SelfHarm | Category::IllegalChildAbuseIwf));
        }
        // 60.9 % allowed, 1.1 % critical in the mix.
        assert!((11_500..12_800).contains(&allowed), "{allowed}");
        assert!((120..330).contains(&critical), "{critical}");
    }

    #[test]
    fn each_demo_school_has_a_feed_in_identitys_order_and_every_input_is_used() {
        let schools: Vec<_> = haven_identity::demo::DEMO_SCHOOLS.iter().map(|(id, ..)| *id).collect();
        let feeds: Vec<_> = DEMO_FEEDS.iter().map(|(id, ..)| *id).collect();
        assert_eq!(schools, feeds);
        for input in [InputKind::SyslogTcp, InputKind::SyslogUdp, InputKind::Grpc, InputKind::Buffer] {
            assert!(DEMO_FEEDS.iter().any(|(_, _, used)| *used == input), "{input:?}");
        }
        assert_eq!(source_id(Vendor::CiscoUmbrella), "cisco-umbrella-1");
    }

    #[test]
    fn the_opening_lines_name_logins_and_the_lease_covers_the_leased_laptop() {
        let now = Timestamp::now();
        let lines = Generator::new(Vendor::Fortigate, 20, 412, 1).opening("kestrel-primary", now);
        let parser_of = |vendor| parser(Some(vendor));
        let users: Vec<_> = lines
            .iter()
            .map(|line| parser_of(Vendor::Fortigate).parse(line.as_bytes(), now).unwrap().user.map(|u| u.into_owned()))
            .collect();
        assert_eq!(users, vec![Some("texample".to_owned()), Some("NSample".to_owned())]);
        let heronsgate = Generator::new(Vendor::CiscoUmbrella, 22, 1_184, 1).opening("heronsgate-academy", now);
        let umbrella = parser_of(Vendor::CiscoUmbrella);
        let parsed = umbrella.parse(heronsgate[0].as_bytes(), now).unwrap();
        let (school, leases) = demo_leases(now);
        assert_eq!(school, "heronsgate-academy");
        assert_eq!(parsed.client_ip.unwrap().to_string(), leases[0].ip);
        assert_eq!((parsed.category, parsed.user), (Category::Drugs, None));
        for (index, (school_id, vendor, _)) in DEMO_FEEDS.iter().enumerate() {
            let opening = Generator::new(*vendor, school_octet(index), 100, 1).opening(school_id, now);
            assert!(!opening.is_empty(), "{school_id} shows at once");
            for line in opening {
                parser_of(*vendor).parse(line.as_bytes(), now).unwrap_or_else(|e| panic!("{school_id}: {e}: {line}"));
            }
        }
    }

    #[test]
    fn the_day_is_busiest_at_lunch_and_quiet_at_night_and_weekends() {
        let at = |hour: i8, day: i8| {
            jiff::civil::date(2026, 12, day)
                .at(hour, 30, 0, 0)
                .to_zoned_datetime(jiff::tz::TimeZone::get("Europe/London").unwrap())
                .unwrap()
                .timestamp()
        };
        // 2026-12-07 is a Monday.
        assert!(rate_per_thousand_pupils(at(12, 7)) > rate_per_thousand_pupils(at(10, 7)));
        assert!(rate_per_thousand_pupils(at(10, 7)) > rate_per_thousand_pupils(at(19, 7)));
        assert!(rate_per_thousand_pupils(at(19, 7)) > rate_per_thousand_pupils(at(3, 7)));
        assert!(rate_per_thousand_pupils(at(12, 12)) < rate_per_thousand_pupils(at(12, 7)), "Saturday");
    }
}
