//! Every file of the shared corpus, line by line: each line is read as the format its folder
//! names (or, for mixed files, as the formats it mixes), and is either parsed or refused with
//! the reason expected for it. No corpus line may go unrecognised.

mod support;

use std::collections::BTreeMap;

use haven_ingest::{LineParser, QuarantineReason, SourceConfig, SourceFormat};
use haven_kernel::SchoolId;

#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    formats: BTreeMap<&'static str, usize>,
    parsed: usize,
    refused: BTreeMap<&'static str, usize>,
}

fn tally(parser: &LineParser, lines: &[String]) -> Tally {
    let mut tally = Tally::default();
    for line in lines.iter().filter(|line| !line.trim().is_empty()) {
        match parser.parse(line.as_bytes(), support::received_at()) {
            Ok(breach) => {
                *tally.formats.entry(breach.source_format.as_str()).or_default() += 1;
                tally.parsed += 1;
            }
            Err(error) => {
                let format = error.format.map_or("none", SourceFormat::as_str);
                *tally.formats.entry(format).or_default() += 1;
                *tally.refused.entry(error.reason().as_str()).or_default() += 1;
            }
        }
    }
    tally
}

fn expect(formats: &[(&'static str, usize)], parsed: usize, refused: &[(&'static str, usize)]) -> Tally {
    Tally { formats: formats.iter().copied().collect(), parsed, refused: refused.iter().copied().collect() }
}

#[test]
fn every_corpus_line_is_parsed_or_refused_for_its_expected_reason() {
    let not_web = QuarantineReason::NotAWebEvent.as_str();
    let expected: BTreeMap<&str, Tally> = [
        // Trend Micro, threatmanager, nxlog and Centrify events carry no URL; NetScaler and
        // Incapsula requests do.
        ("cef/cribl_cef_syslog_samples.log", expect(&[("cef", 12)], 5, &[(not_web, 7)])),
        (
            "cisco-umbrella-proxy/azure-sentinel_cisco_umbrella_proxy_CL_excerpt.json",
            expect(&[("cisco_umbrella", 5)], 5, &[]),
        ),
        ("fortigate-kv/cribl_fortigate_traffic.log", expect(&[("fortigate", 19)], 0, &[(not_web, 19)])),
        // Web events, but every client address is impossible (21.259.351.45) or sanitised.
        ("fortigate-kv/cribl_fortigate_utm.log", expect(&[("fortigate", 5)], 0, &[("invalid_field", 5)])),
        ("leef/cribl_leef_syslog_samples.log", expect(&[("leef", 4)], 0, &[(not_web, 4)])),
        ("pan-os-csv/cribl_pan_config.log", expect(&[("pan_os", 1)], 0, &[(not_web, 1)])),
        ("pan-os-csv/cribl_pan_correlation.log", expect(&[("pan_os", 1)], 0, &[(not_web, 1)])),
        ("pan-os-csv/cribl_pan_globalprotect.log", expect(&[("pan_os", 1)], 0, &[(not_web, 1)])),
        ("pan-os-csv/cribl_pan_hipmatch.log", expect(&[("pan_os", 1)], 0, &[(not_web, 1)])),
        ("pan-os-csv/cribl_pan_system.log", expect(&[("pan_os", 4)], 0, &[(not_web, 4)])),
        ("pan-os-csv/cribl_pan_threat.log", expect(&[("pan_os", 1)], 1, &[])),
        ("pan-os-csv/cribl_pan_traffic.log", expect(&[("pan_os", 4)], 0, &[(not_web, 4)])),
        // A 407 challenge and two transaction errors.
        ("squid-combined/datadog_squid_combined.log", expect(&[("squid_combined", 5)], 2, &[(not_web, 3)])),
        ("squid-native/crowdstrike-logscale_squid-proxy_tests.log", expect(&[("squid_native", 5)], 5, &[])),
        ("squid-native/datadog_squid_cache_log_not_access.log", expect(&[("squid_native", 3)], 0, &[(not_web, 3)])),
        // `/favicon.ico` has no host; `error:transaction-end-before-headers` is no request.
        (
            "squid-native/datadog_squid_native.log",
            expect(&[("squid_native", 13)], 11, &[("missing_field", 1), (not_web, 1)]),
        ),
        ("squidguard/usiem-squid_docker_logs.log", expect(&[("squid_native", 7), ("squidguard", 5)], 12, &[])),
        // One Zscaler web log and one FortiGate app-control row, both as CEF.
        ("zscaler-nss/azure-sentinel_ZScaler_commonsecuritylog.json", expect(&[("cef", 2)], 1, &[(not_web, 1)])),
    ]
    .into_iter()
    .collect();
    let parser = support::parser();
    let files = support::corpus_files();
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, expected.keys().copied().collect::<Vec<_>>(), "the corpus has files this test does not know");
    for (name, lines) in &files {
        assert_eq!(&tally(&parser, lines), &expected[name.as_str()], "{name}");
    }
}

#[test]
fn a_configured_format_reads_its_own_lines_as_detection_does() {
    for (name, lines) in support::corpus_files().iter().chain(support::sample_files().iter()) {
        let auto = support::parser();
        for line in lines.iter().filter(|line| !line.trim().is_empty()) {
            let detected = match auto.parse(line.as_bytes(), support::received_at()) {
                Ok(breach) => breach.source_format,
                Err(error) => match error.format {
                    Some(format) => format,
                    None => continue,
                },
            };
            let mut config = SourceConfig::new(SchoolId::parse("oakfield-academy").unwrap());
            config.format = Some(detected);
            let configured = LineParser::new(config);
            let with_format = configured.parse(line.as_bytes(), support::received_at());
            assert_eq!(with_format, auto.parse(line.as_bytes(), support::received_at()), "{name}: {line}");
        }
    }
}

#[test]
fn squidguard_local_times_agree_with_squids_utc_epochs_from_the_same_run() {
    // The lab's squidGuard wrote local time (GMT in February, so equal to UTC) for the same
    // CONNECT requests that Squid logged as epochs: the source-zone reading must line up.
    let parser = support::parser();
    let (_, lines) = support::corpus_files().into_iter().find(|(name, _)| name.starts_with("squidguard/")).unwrap();
    let at = |line: &str| parser.parse(line.as_bytes(), support::received_at()).unwrap().occurred_at;
    let guard = at(&lines[0]);
    let squid = at(&lines[7]);
    assert_eq!(guard.as_second(), squid.as_second(), "{guard} vs {squid}");
}

#[test]
fn a_format_configured_wrongly_refuses_lines_rather_than_misreading_them() {
    let mut config = SourceConfig::new(SchoolId::parse("oakfield-academy").unwrap());
    config.format = Some(SourceFormat::PanOs);
    let parser = LineParser::new(config);
    for (name, lines) in support::corpus_files().iter().filter(|(name, _)| name.starts_with("squid")) {
        for line in lines.iter().filter(|line| !line.trim().is_empty()) {
            let error = parser.parse(line.as_bytes(), support::received_at()).expect_err(line);
            assert_eq!(error.format, Some(SourceFormat::PanOs), "{name}");
        }
    }
}
