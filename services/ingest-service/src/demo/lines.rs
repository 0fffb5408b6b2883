//! The demo's filter lines in each vendor's own shape (the layouts of `shared/corpus/` and
//! `services/ingest/samples/`): FortiGate key=value, Sophos Firewall key=value, PAN-OS THREAT
//! CSV behind a syslog header, Cisco Umbrella proxy CSV and Barracuda Web Security Gateway
//! syslog. Addresses are from a school network's private 10.0.0.0/8 plan, hosts are
//! `.example`, users are invented logins.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A demo school's invented filter: whose log format its lines are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    Fortigate,
    Sophos,
    PanOs,
    CiscoUmbrella,
    Barracuda,
}

impl Vendor {
    pub const ALL: [Vendor; 5] =
        [Vendor::Fortigate, Vendor::Sophos, Vendor::PanOs, Vendor::CiscoUmbrella, Vendor::Barracuda];

    /// The format ingest reads the lines as.
    pub fn format(self) -> haven_ingest::SourceFormat {
        use haven_ingest::SourceFormat;
        match self {
            Vendor::Fortigate => SourceFormat::Fortigate,
            Vendor::Sophos => SourceFormat::Sophos,
            Vendor::PanOs => SourceFormat::PanOs,
            Vendor::CiscoUmbrella => SourceFormat::CiscoUmbrella,
            Vendor::Barracuda => SourceFormat::Barracuda,
        }
    }

    /// The vendor's own name for a kind of site (its category vocabulary).
    pub fn label(self, kind: Kind) -> &'static str {
        use Kind::*;
        let [fortigate, sophos, pan_os, umbrella, barracuda] = match kind {
            Games => ["Games", "Games", "games", "Games", "Games"],
            Social => [
                "Social Networking",
                "Social Networking",
                "social-networking",
                "Social Networking",
                "Social Networking",
            ],
            Streaming => {
                ["Streaming Media and Download", "Streaming Media", "streaming-media", "Movies", "Streaming Media"]
            }
            ProxyAvoidance => {
                ["Proxy Avoidance", "Anonymizers", "proxy-avoidance-and-anonymizers", "Proxy/Anonymizer", "Anonymizers"]
            }
            Gambling => ["Gambling", "Gambling", "gambling", "Gambling", "Gambling"],
            Pornography => ["Pornography", "Sexually Explicit", "adult", "Pornography", "Pornography"],
            Malware => ["Malicious Websites", "Hacking", "malware", "Malware", "Spyware"],
            Drugs => ["Drug Abuse", "Marijuana", "abused-drugs", "Drugs", "Illegal Drugs"],
            Violence => ["Explicit Violence", "Extreme", "weapons", "Weapons", "Violence"],
            Discrimination => {
                ["Discrimination", "Intolerance & Hate", "questionable", "Hate/Discrimination", "Hate Speech"]
            }
            Extremism => [
                "Extremist Groups",
                "Militancy & Extremist",
                "extremism",
                "Terrorism and Violent Extremism",
                "Extremism",
            ],
            SelfHarm => ["Self-harm", "Self Harm", "self-harm", "Self Harm", "Self Harm"],
            // A match on the IWF list, under each filter's name for it.
            ChildAbuse => ["Child Sexual Abuse", "Child Abuse", "IWF URL List", "Child Abuse Content", "Child Abuse"],
        };
        match self {
            Vendor::Fortigate => fortigate,
            Vendor::Sophos => sophos,
            Vendor::PanOs => pan_os,
            Vendor::CiscoUmbrella => umbrella,
            Vendor::Barracuda => barracuda,
        }
    }
}

/// A kind of site the demo's pupils reach for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Games,
    Social,
    Streaming,
    ProxyAvoidance,
    Gambling,
    Pornography,
    Malware,
    Drugs,
    Violence,
    Discrimination,
    Extremism,
    SelfHarm,
    ChildAbuse,
}

impl Kind {
    /// Whether the schools' filters block it (the rest are allowed and logged).
    pub fn blocked(self) -> bool {
        !matches!(self, Kind::Games | Kind::Social | Kind::Streaming)
    }
}

/// One request a demo pupil's device makes.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub at: Timestamp,
    /// The school's second octet in the 10.0.0.0/8 plan.
    pub school_octet: u8,
    pub device: u32,
    pub kind: Kind,
    pub host: &'a str,
    /// The filter's own session or record number.
    pub session: u64,
    /// The login the filter knows the user by (single sign-on), if any.
    pub user: Option<&'a str>,
}

/// The address of a demo school's device.
pub fn device_ip(school_octet: u8, device: u32) -> String {
    format!("10.{school_octet}.{}.{}", device / 200 + 1, device % 200 + 10)
}

/// The line `vendor`'s filter writes for `request`.
pub fn line(vendor: Vendor, request: &Request<'_>) -> String {
    let label = vendor.label(request.kind);
    match vendor {
        Vendor::Fortigate => {
            let (at, octet, device, session) = (request.at, request.school_octet, request.device, request.session);
            match request.user {
                Some(user) => fortigate_user_line(at, octet, device, (label, request.host), session, user),
                None => fortigate_line(at, octet, device, label, request.host, session),
            }
        }
        Vendor::Sophos => sophos_line(request, label),
        Vendor::PanOs => pan_os_line(request, label),
        Vendor::CiscoUmbrella => umbrella_line(request, label),
        Vendor::Barracuda => barracuda_line(request, label),
    }
}

/// One FortiGate web-filter line (key=value, as FortiOS writes it to syslog); `category` is
/// FortiGuard's.
pub fn fortigate_line(
    at: Timestamp,
    school_octet: u8,
    device: u32,
    category: &str,
    host: &str,
    session: u64,
) -> String {
    let utc = at.to_zoned_datetime(TimeZone::UTC);
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

/// The schools' local time: Sophos and PAN-OS write it without an offset (the source's
/// `timezone` says which).
fn london() -> TimeZone {
    TimeZone::get("Europe/London").expect("bundled tz")
}

/// Sophos Firewall (SFOS) content filtering, local time.
fn sophos_line(request: &Request<'_>, category: &str) -> String {
    let local = request.at.to_zoned_datetime(london());
    let subtype = if request.kind.blocked() { "Denied" } else { "Allowed" };
    format!(
        "device=\"SFW\" date={} time={} timezone=\"{}\" device_name=\"XG230\" device_id=C44310000000 \
         log_id=050901616001 log_type=\"Content Filtering\" log_component=\"HTTP\" log_subtype=\"{subtype}\" status=\"\" \
         priority=Information fw_rule_id=5 user_name=\"{}\" user_gp=\"Pupils\" iap=2 category=\"{category}\" \
         category_type=\"Objectionable\" url=\"https://{host}/\" contenttype=\"\" override_token=\"\" httpresponsecode=\"\" \
         src_ip={} dst_ip=198.51.100.44 protocol=\"TCP\" src_port=50544 dst_port=443 sent_bytes=0 recv_bytes=0 \
         domain={host} exceptions= activityname=\"\" con_id={}",
        local.date(),
        local.time().strftime("%H:%M:%S"),
        local.strftime("%Z"),
        request.user.unwrap_or(""),
        device_ip(request.school_octet, request.device),
        request.session,
        host = request.host,
    )
}

/// PAN-OS THREAT/url CSV behind a BSD syslog header, local time.
fn pan_os_line(request: &Request<'_>, category: &str) -> String {
    let local = request.at.to_zoned_datetime(london());
    let stamp = local.strftime("%Y/%m/%d %H:%M:%S");
    let action = if request.kind.blocked() { "block-url" } else { "allow" };
    let user = request.user.map(|user| format!("saltmarsh\\{user}")).unwrap_or_default();
    format!(
        "<14>{} pa-demo-01 1,{stamp},013201001234,THREAT,url,2561,{stamp},{},203.0.113.10,192.0.2.10,203.0.113.10,\
         pupils-web,{user},,ssl,vsys1,trust,untrust,ethernet1/2,ethernet1/1,forward-all,{stamp},{},1,51544,443,40211,\
         443,0x40b000,tcp,{action},\"{}/\",(9999),{category},informational,client-to-server,{},0x2000000000000000,\
         10.0.0.0-10.255.255.255,United Kingdom,0,text/html",
        local.strftime("%b %e %H:%M:%S"),
        device_ip(request.school_octet, request.device),
        request.session % 100_000,
        request.host,
        request.session,
    )
}

/// A Cisco Umbrella proxy log row (UTC): the identity is the user's when the filter knows
/// them, else the roaming computer's.
fn umbrella_line(request: &Request<'_>, category: &str) -> String {
    let utc = request.at.to_zoned_datetime(TimeZone::UTC);
    let (identity, identity_type) = match request.user {
        Some(user) => (format!("{user}@heronsgate.example"), "AD Users"),
        None => (format!("HERONS-LAPTOP-{}", request.device), "Roaming Computers"),
    };
    let (action, status, blocked_category) =
        if request.kind.blocked() { ("BLOCKED", "403", category) } else { ("ALLOWED", "200", "") };
    format!(
        "\"{}\",\"{identity}\",\"{}\",\"192.0.2.10\",\"203.0.113.10\",\"text/html\",\"{action}\",\"https://{}/\",\"\",\
         \"Mozilla/5.0\",\"{status}\",\"512\",\"0\",\"0\",\"\",\"{category}\",\"\",\"\",\"\",\"\",\"\",\"{identity_type}\",\
         \"{blocked_category}\",\"{identity}\",\"{identity_type}\",\"GET\"",
        utc.strftime("%Y-%m-%d %H:%M:%S"),
        device_ip(request.school_octet, request.device),
        request.host,
    )
}

/// Barracuda Web Security Gateway `http_scan` syslog (the time is the epoch field).
fn barracuda_line(request: &Request<'_>, category: &str) -> String {
    let ip = device_ip(request.school_octet, request.device);
    // `match tq action-type` after the format version: 1 = blocked (CloudGen reads it).
    let (action, codes) = if request.kind.blocked() { ("BLOCKED", "1 0 1") } else { ("ALLOWED", "0 0 0") };
    let user = request.user.map(|user| format!("ldap:{user}")).unwrap_or_else(|| "-".into());
    format!(
        "{} barracuda http_scan[4312]: {} 1 {ip} 203.0.113.10 text/html {ip} https://{host}/ 0 BYF {action} CLEAN 2 {codes} 0 \
         (-) {score} {category} 0 - 0 {host} {category} [{user}] {host} - - 0",
        request.at.to_zoned_datetime(TimeZone::UTC).strftime("%b %e %H:%M:%S"),
        request.at.as_second(),
        host = request.host,
        score = u8::from(request.kind.blocked()),
    )
}
