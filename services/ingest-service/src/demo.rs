//! The demo feed (`haven up --demo`): each demo school's invented FortiGate web filter sends
//! its log over syslog TCP to the school's real listener, at a rate shaped like a school day,
//! with a plausible category mix — and, from the first seconds, one self-harm search and one
//! burst of repeated gambling attempts, so the DSL's alert queue is never empty in a demo.
//! Some opening lines name the demo learners' invented network logins, and one school's
//! network reports a lease, so alerts are attributed to learners and one vulnerable learner's
//! first attempt is raised (ADR 0025). Addresses are from the private 10.0.0.0/8 plan of a
//! school network; hosts are `.example`. Nothing here is real.

use std::net::SocketAddr;
use std::time::Duration;

use haven_runtime::Shutdown;
use jiff::Timestamp;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// (FortiGuard category, weight, invented host) of the mix; weights are per thousand lines.
const MIX: [(&str, u32, &str); 12] = [
    ("Games", 260, "arcade.example"),
    ("Social Networking", 200, "chatter.example"),
    ("Streaming Media and Download", 150, "clips.example"),
    ("Proxy Avoidance", 90, "unblock-me.example"),
    ("Gambling", 80, "lucky-spins.example"),
    ("Pornography", 60, "adult-site.example"),
    ("Malicious Websites", 50, "free-prizes.example"),
    ("Drug Abuse", 30, "party-pills.example"),
    ("Explicit Violence", 30, "fight-vids.example"),
    ("Discrimination", 25, "hate-forum.example"),
    ("Extremist Groups", 15, "radical-voice.example"),
    ("Self-harm", 10, "dark-thoughts.example"),
];

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

/// One FortiGate web-filter line (key=value, as FortiOS writes it to syslog).
pub fn fortigate_line(
    at: Timestamp,
    school_octet: u8,
    device: u32,
    category: &str,
    host: &str,
    session: u64,
) -> String {
    let utc = at.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let blocked = category != "Games" && category != "Social Networking" && category != "Streaming Media and Download";
    let (event, action) = if blocked { ("ftgd_blk", "blocked") } else { ("ftgd_allow", "passthrough") };
    format!(
        "date={} time={} logid=\"0316013056\" type=\"utm\" subtype=\"webfilter\" eventtype=\"{event}\" level=\"warning\" \
         vd=\"root\" eventtime={} tz=\"+0000\" policyid=4 sessionid={session} srcip={} srcport=51544 \
         hostname=\"{host}\" profile=\"pupils\" action=\"{action}\" url=\"/\" method=\"domain\" catdesc=\"{category}\"",
        utc.date(),
        utc.time().strftime("%H:%M:%S"),
        at.as_second(),
        device_ip(school_octet, device),
    )
}

/// The address of a demo school's device.
pub fn device_ip(school_octet: u8, device: u32) -> String {
    format!("10.{school_octet}.{}.{}", device / 200 + 1, device % 200 + 10)
}

/// A FortiGate line of a user the filter knows (its `user=` field, as with single sign-on).
pub fn fortigate_user_line(
    at: Timestamp,
    school_octet: u8,
    device: u32,
    (category, host): (&str, &str),
    session: u64,
    user: &str,
) -> String {
    format!("{} user=\"{user}\"", fortigate_line(at, school_octet, device, category, host, session))
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

/// What the feed sends to one school.
#[derive(Clone, Debug)]
pub struct DemoSchool {
    pub school_id: String,
    pub pupils: u32,
    /// The school's syslog TCP listener.
    pub syslog_tcp: SocketAddr,
}

/// Runs the feed until shutdown: connects to each school's listener (reconnecting when the
/// connection drops) and writes its lines at the shaped rate, `speed` times real time.
pub async fn run(schools: Vec<DemoSchool>, speed: f64, shutdown: Shutdown) {
    let mut tasks = Vec::new();
    for (index, school) in schools.into_iter().enumerate() {
        tasks.push(tokio::spawn(feed_school(index as u8, school, speed, shutdown.clone())));
    }
    for task in tasks {
        let _ = task.await;
    }
}

async fn feed_school(index: u8, school: DemoSchool, speed: f64, shutdown: Shutdown) {
    let mut rng = Rng(0x5eed_0000 + u64::from(index));
    let octet = 20 + index;
    let mut session = 70_000u64;
    let mut opening = opening_lines(&school.school_id, octet, &mut session);
    let tick = Duration::from_millis(250);
    let mut carry = 0.0f64;
    loop {
        let Ok(mut stream) = TcpStream::connect(school.syslog_tcp).await else {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                () = shutdown.triggered() => return,
            }
        };
        loop {
            let now = Timestamp::now();
            carry += rate_per_thousand_pupils(now) * f64::from(school.pupils) / 1000.0 * tick.as_secs_f64() * speed;
            let mut batch = std::mem::take(&mut opening);
            while carry >= 1.0 {
                carry -= 1.0;
                let pick = rng.below(1000) as u32;
                let mut sum = 0;
                let (category, _, host) = MIX
                    .iter()
                    .find(|(_, weight, _)| {
                        sum += weight;
                        pick < sum
                    })
                    .unwrap_or(&MIX[0]);
                let device = rng.below(u64::from(school.pupils.max(1))) as u32;
                session += 1;
                batch.push(fortigate_line(now, octet, device, category, host, session));
            }
            let mut bytes = Vec::new();
            for line in &batch {
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
            }
            if !bytes.is_empty() && stream.write_all(&bytes).await.is_err() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                () = shutdown.triggered() => return,
            }
        }
    }
}

/// The first lines of a demo: at Kestrel Lane an invented learner (signed in as `texample`)
/// searches for self-harm content (a critical alert naming the learner) and another, with
/// special educational needs (`nsample`), tries a gambling site once (a medium alert at once,
/// raised for a vulnerable learner); at Marram Fields an unknown device tries a gambling site
/// again and again (a repeated-attempts alert); at Heronsgate the laptop leased to a learner on
/// a child-protection plan reaches a drugs site (attributed by the lease, raised).
fn opening_lines(school_id: &str, octet: u8, session: &mut u64) -> Vec<String> {
    let now = Timestamp::now();
    let mut lines = Vec::new();
    let mut line = |device: u32, category: &str, host: &str, user: Option<&str>| {
        *session += 1;
        lines.push(match user {
            Some(user) => fortigate_user_line(now, octet, device, (category, host), *session, user),
            None => fortigate_line(now, octet, device, category, host, *session),
        });
    };
    match school_id {
        "kestrel-primary" => {
            line(17, "Self-harm", "dark-thoughts.example", Some("texample"));
            line(23, "Gambling", "lucky-spins.example", Some("NSample"));
        }
        "marram-primary" => {
            for _ in 0..3 {
                line(42, "Gambling", "lucky-spins.example", None);
            }
        }
        "heronsgate-academy" => line(31, "Drug Abuse", "party-pills.example", None),
        _ => {}
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_line_parses_into_its_category() {
        let school = haven_kernel::SchoolId::parse("kestrel-primary").unwrap();
        let parser = haven_ingest::LineParser::new(haven_ingest::SourceConfig::new(school));
        let at = Timestamp::from_second(1_796_000_000).unwrap();
        for (category, _, host) in MIX {
            let line = fortigate_line(at, 20, 399, category, host, 1);
            let parsed = parser.parse(line.as_bytes(), at).unwrap_or_else(|e| panic!("{category}: {e}: {line}"));
            assert_eq!(parsed.occurred_at, at);
            assert_eq!(parsed.host, host);
            assert_eq!(parsed.client_ip.unwrap().to_string(), "10.20.2.209");
            let expected = match category {
                "Self-harm" => haven_ingest::Category::SelfHarm,
                "Gambling" => haven_ingest::Category::Gambling,
                "Extremist Groups" => haven_ingest::Category::Extremism,
                _ => continue,
            };
            assert_eq!(parsed.category, expected, "{line}");
        }
    }

    #[test]
    fn the_opening_lines_name_logins_and_the_lease_covers_the_leased_laptop() {
        let school = haven_kernel::SchoolId::parse("kestrel-primary").unwrap();
        let parser = haven_ingest::LineParser::new(haven_ingest::SourceConfig::new(school));
        let mut session = 0;
        let lines = opening_lines("kestrel-primary", 20, &mut session);
        let users: Vec<_> = lines
            .iter()
            .map(|line| parser.parse(line.as_bytes(), Timestamp::now()).unwrap().user.map(|u| u.into_owned()))
            .collect();
        assert_eq!(users, vec![Some("texample".to_owned()), Some("NSample".to_owned())]);
        let heronsgate = opening_lines("heronsgate-academy", 22, &mut session);
        let parsed = parser.parse(heronsgate[0].as_bytes(), Timestamp::now()).unwrap();
        let (school, leases) = demo_leases(Timestamp::now());
        assert_eq!(school, "heronsgate-academy");
        assert_eq!(parsed.client_ip.unwrap().to_string(), leases[0].ip);
        assert_eq!(parsed.category, haven_ingest::Category::Drugs);
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
