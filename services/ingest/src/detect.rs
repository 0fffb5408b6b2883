//! Per-line format detection: cheap checks on how a payload starts, most specific first. It
//! runs on each candidate payload of a line (after the syslog header, then after the host and
//! the tag), so a feed may mix formats and envelopes.

use crate::format::SourceFormat;
use crate::text::{needle, next_token};
use crate::time;

needle!(SOPHOS_FIREWALL, b"log_type=");
needle!(SOPHOS_UTM, b" httpproxy[");
needle!(SOPHOS_APPLIANCE_TIME, b" t=");
needle!(FORTIGATE_LOGID, b"logid=");
needle!(ZSCALER_URLCAT, b"urlcat=");
needle!(SQUIDGUARD_REQUEST, b"Request(");
needle!(BARRACUDA_MARKER, b" BYF ");

pub(crate) fn detect(payload: &str) -> Option<SourceFormat> {
    let bytes = payload.as_bytes();
    let head = &bytes[..bytes.len().min(512)];
    match *bytes.first()? {
        b'C' if payload.starts_with("CEF:") => return Some(SourceFormat::Cef),
        b'L' if payload.starts_with("LEEF:") => return Some(SourceFormat::Leef),
        b'{' => return Some(SourceFormat::JsonLines),
        b'"' if time::ymd_hms(&payload[1..]).is_some() || payload.starts_with("\"Timestamp\",") => {
            return Some(SourceFormat::CiscoUmbrella);
        }
        _ => {}
    }
    if SOPHOS_FIREWALL.is_in(head)
        || SOPHOS_UTM.is_in(head)
        || (payload.starts_with("h=") && SOPHOS_APPLIANCE_TIME.is_in(head))
    {
        return Some(SourceFormat::Sophos);
    }
    if ["date=", "logver=", "logid=", "itime=", "eventtime="].iter().any(|p| payload.starts_with(p))
        && FORTIGATE_LOGID.is_in(head)
    {
        return Some(SourceFormat::Fortigate);
    }
    if memchr::memchr(b'\t', head).is_some() && ZSCALER_URLCAT.is_in(bytes) {
        return Some(SourceFormat::ZscalerNss);
    }
    if !bytes[0].is_ascii_digit() {
        return squid_combined(payload).then_some(SourceFormat::SquidCombined);
    }
    // PAN-OS: `1,2021/07/20 23:59:02,…` (a FUTURE_USE column, then the receive time).
    if let Some(comma) = memchr::memchr(b',', &head[..head.len().min(12)])
        && bytes[..comma].iter().all(u8::is_ascii_digit)
        && time::ymd_hms(&payload[comma + 1..]).is_some_and(|_| bytes.get(comma + 5) == Some(&b'/'))
    {
        return Some(SourceFormat::PanOs);
    }
    if let Some((_, rest)) = time::ymd_hms(payload) {
        if rest.starts_with(" [") && SQUIDGUARD_REQUEST.is_in(head) {
            return Some(SourceFormat::Squidguard);
        }
        // Squid's cache.log (`2019/10/11 09:14:49 kid1| …`): read as Squid so it is refused
        // as "not a web event" rather than as an unknown format.
        if memchr::memchr(b'|', head).is_some() {
            return Some(SourceFormat::SquidNative);
        }
    }
    let mut rest = payload;
    let first = next_token(&mut rest)?;
    if first.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        if BARRACUDA_MARKER.is_in(head) {
            return Some(SourceFormat::Barracuda);
        }
        let mut fields = rest;
        let fourth = (0..3).map(|_| next_token(&mut fields)).last().flatten();
        if fourth.is_some_and(|code| code.contains('/') && code.starts_with(|c: char| c.is_ascii_uppercase())) {
            return Some(SourceFormat::SquidNative);
        }
    }
    squid_combined(payload).then_some(SourceFormat::SquidCombined)
}

/// `client ident user [dd/Mon/yyyy:hh:mm:ss zone] "…`.
fn squid_combined(payload: &str) -> bool {
    let Some(open) = memchr::memchr(b'[', payload.as_bytes()) else { return false };
    let client = &payload[..memchr::memchr(b' ', payload.as_bytes()).unwrap_or(0)];
    !client.is_empty()
        && client.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
        && payload[open..].get(1..3).is_some_and(|day| day.bytes().all(|b| b.is_ascii_digit()))
        && payload[open..].get(3..4) == Some("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_by_its_start() {
        let cases = [
            ("CEF:0|a|b|1|2|n|3|act=x", SourceFormat::Cef),
            ("LEEF:1.0|a|b|1|2|k=v", SourceFormat::Leef),
            (r#"{"time":"x"}"#, SourceFormat::JsonLines),
            (r#""2017-10-02 23:52:53","A","1.2.3.4""#, SourceFormat::CiscoUmbrella),
            ("date=2021-04-23 time=19:19:43 devname=N logid=0004000017 type=traffic", SourceFormat::Fortigate),
            ("1,2021/07/20 23:59:02,1234567890,THREAT,url", SourceFormat::PanOs),
            (
                "2021-02-14 00:02:30 [26] Request(default/adult/-) a.com:443 1.2.3.4/- - CONNECT REDIRECT",
                SourceFormat::Squidguard,
            ),
            ("2019/10/11 09:14:49 kid1| Accepting HTTP Socket connections", SourceFormat::SquidNative),
            (
                "1570784654.576    111 127.0.0.1 TCP_MISS/301 491 GET http://x - HIER_DIRECT/1.2.3.4 -",
                SourceFormat::SquidNative,
            ),
            (
                "10.10.10.10 - - [12/Sep/2024:12:38:20 +0530] \"GET http://x HTTP/1.1\" 407 4235",
                SourceFormat::SquidCombined,
            ),
            (
                "1359493081 1 10.1.1.1 1.2.3.4 text/html 10.1.1.1 http://a/ 12 BYF ALLOWED CLEAN",
                SourceFormat::Barracuda,
            ),
            ("epochtime=1655738951\tlogin=a@b\turlcat=Gambling", SourceFormat::ZscalerNss),
            (r#"device="SFW" date=2024-01-01 log_type="Content Filtering""#, SourceFormat::Sophos),
        ];
        for (payload, format) in cases {
            assert_eq!(detect(payload), Some(format), "{payload}");
        }
        for unknown in ["", "hello world", "12345", "rdaganffffffc01 date=2021", "<14>"] {
            assert_eq!(detect(unknown), None, "{unknown}");
        }
    }
}
