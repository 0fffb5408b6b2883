//! The web pages in a real browser: `haven up --demo` as a user runs it, headless Chromium
//! driven through chromedriver (Debian's `chromium` and `chromium-driver`; scripts/test
//! installs them). Screenshots go to `target/browser-artifacts/`.

#[path = "browser/webdriver.rs"]
mod webdriver;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use webdriver::{Browser, http};

const PASSWORD: &str = "brightwater demo 2026";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `haven up --demo`, stopped with SIGINT when dropped.
struct Haven {
    child: Child,
    http: u16,
    _dir: tempfile::TempDir,
}

impl Haven {
    fn start() -> Haven {
        let dir = tempfile::tempdir().unwrap();
        let (grpc, http_port) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["up", "--demo", "--data-dir"])
            .arg(dir.path())
            .args(["--grpc-addr", &format!("127.0.0.1:{grpc}"), "--http-addr", &format!("127.0.0.1:{http_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut haven = Haven { child, http: http_port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            assert!(haven.child.try_wait().unwrap().is_none(), "haven up exited before it was ready");
            if std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
                && http(http_port, "GET", "/readyz", &[], None).0 == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "haven up never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        haven
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }
}

impl Drop for Haven {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("browser-artifacts")
}

/// Signs in through the form and accepts the AUP as a person would.
fn sign_in(browser: &Browser, haven: &Haven, person: &str) {
    browser.go(&haven.url("/dashboard"));
    browser.wait_for_url("/sign-in"); // an unsigned visitor is sent to sign in
    browser.type_into("#login", &format!("{person}@brightwater.example"));
    browser.type_into("#password", PASSWORD);
    browser.click("#sign-in");
    browser.wait_for_url("/aup"); // a new demo account must accept the AUP first
    browser.click("#accept");
    browser.click("#accept-aup");
    browser.wait_for_url("/dashboard");
}

/// What the dashboard's API says, with the browser's own session cookie.
fn api_dashboard(haven: &Haven, browser: &Browser) -> Value {
    let cookie = format!("haven_session={}", browser.cookie("haven_session"));
    let (status, _, body) = http(haven.http, "GET", "/api/v1/reporting/dashboard", &[("Cookie", &cookie)], None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// (key → count) of the marks matching `css` in the page.
fn marks(browser: &Browser, css: &str) -> BTreeMap<String, u64> {
    let script = format!(
        "return Array.from(document.querySelectorAll('{css}')).map(e => [e.dataset.key || e.dataset.day, Number(e.dataset.count)]);"
    );
    let mut found = BTreeMap::new();
    for pair in browser.run(&script).as_array().unwrap() {
        *found.entry(pair[0].as_str().unwrap().to_owned()).or_default() += pair[1].as_u64().unwrap();
    }
    found
}

/// Loads the dashboard until the page and the API answer from the same checkpoint (the
/// projection may still be catching up with the seeded demo), then returns both.
fn dashboard_and_api(browser: &Browser, haven: &Haven) -> Value {
    for _attempt in 0..40 {
        browser.go(&haven.url("/dashboard"));
        let page_checkpoint: u64 = browser.text("#checkpoint").parse().unwrap();
        let api = api_dashboard(haven, browser);
        if api["checkpoint"].as_u64() == Some(page_checkpoint) {
            return api;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("the page and the API never answered from the same checkpoint");
}

#[test]
fn the_trust_lead_sees_the_charts_from_demo_data_and_a_governor_is_refused_case_pages() {
    let haven = Haven::start();
    let browser = Browser::start(free_port());
    let shots = artifacts();

    // The trust safeguarding lead: every school.
    sign_in(&browser, &haven, "demo-lead");
    let api = dashboard_and_api(&browser, &haven);
    assert!(browser.text("h1").contains("Trust dashboard"));
    let bars = marks(&browser, "#chart-schools rect.bar");
    let api_schools: BTreeMap<String, u64> = api["schools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["school_id"].as_str().unwrap().to_owned(), row["total"].as_u64().unwrap()))
        .collect();
    assert_eq!(bars.len(), 5, "one bar per demo school: {bars:?}");
    assert_eq!(bars, api_schools, "the bars are drawn from what the API reports");
    let total = api["total"].as_u64().unwrap();
    assert!(total > 1_000, "the demo seeds weeks of breaches: {total}");
    let days = marks(&browser, "#chart-daily circle.point");
    assert_eq!(days.values().sum::<u64>(), total, "the daily series adds up to the total");
    assert_eq!(browser.count("#chart-hours rect.cell"), 5 * 24);
    let heat = browser.run(
        "return Array.from(document.querySelectorAll('#chart-hours rect.cell')).reduce((h, e) => { h[Number(e.dataset.hour)] += Number(e.dataset.count); return h; }, new Array(24).fill(0));",
    );
    assert_eq!(&heat, &api["by_hour_of_day"], "the heat map's hours match the API's");
    assert_eq!(browser.text("#total-breaches"), total.to_string());
    assert!(browser.count("#alerts tr") > 1, "the demo's alerts by severity and time to acknowledge");
    let outliers = browser.text("#outliers");
    assert!(
        outliers.contains("saltmarsh-high") && outliers.contains("Self harm"),
        "the demo's run of self-harm searches at one school stands out: {outliers}"
    );
    browser.screenshot(&shots.join("dashboard-trust-lead.png"));

    // Drill into one school by its bar.
    browser.click("#chart-schools a[href='/schools/kestrel-primary']");
    browser.wait_for_url("/schools/kestrel-primary");
    assert!(browser.text("#school-heading").contains("kestrel-primary"));
    let school_bars = marks(&browser, "#chart-schools rect.bar");
    assert_eq!(school_bars.len(), 1);
    assert_eq!(school_bars.get("kestrel-primary"), api_schools.get("kestrel-primary"));
    assert!(browser.count("#weekly tr") > 2, "the weekly trend against the trust is shown");
    browser.screenshot(&shots.join("school-kestrel-primary.png"));

    // The registers list the demo's referrals.
    browser.go(&haven.url("/registers/lado"));
    assert_eq!(browser.text("#register"), "LADO register");
    assert_eq!(browser.count("tr.entry"), 1, "the demo's one LADO referral");
    browser.screenshot(&shots.join("register-lado.png"));
    browser.click("#sign-out");
    browser.wait_for_url("/sign-in");

    // A governor of Kestrel Lane: aggregates of their school only, never a case page.
    browser.delete_cookies();
    sign_in(&browser, &haven, "kestrel-governor");
    let governor_bars = marks(&browser, "#chart-schools rect.bar");
    assert_eq!(governor_bars.keys().collect::<Vec<_>>(), ["kestrel-primary"], "their school only");
    let source = browser.source();
    assert!(!source.contains("demo-case-"), "no case ids on a governor's dashboard");
    assert!(!source.contains("Allegation against staff"), "no case types where the viewer may not read cases");
    assert_eq!(browser.count("a[href='/registers/lado']"), 0, "no register link for a governor");
    assert_eq!(browser.text("#open-cases"), "fewer than 5", "small counts are withheld from who may not read cases");
    browser.screenshot(&shots.join("dashboard-governor.png"));
    for path in ["/registers/lado", "/registers/police", "/registers/lado.csv", "/schools/heronsgate-academy", "/audit"]
    {
        browser.go(&haven.url(path));
        assert_eq!(browser.text("#forbidden"), "Not available to you", "{path}");
        assert!(!browser.source().contains("demo-case-"), "{path}");
    }
    browser.go(&haven.url("/registers/lado"));
    browser.screenshot(&shots.join("governor-refused-register.png"));
    let cookie = format!("haven_session={}", browser.cookie("haven_session"));
    let (status, _, _) = http(haven.http, "GET", "/registers/lado", &[("Cookie", &cookie)], None);
    assert_eq!(status, 403, "the refusal is a 403");
    // Their termly report: aggregates, printable, no ids.
    browser.go(&haven.url("/governors"));
    assert!(browser.text("h1").contains("Online safety report to governors"));
    assert!(!browser.source().contains("demo-case-"));
    browser.screenshot(&shots.join("governors-report.png"));
    browser.go(&haven.url("/dashboard"));
    browser.click("#sign-out");
    browser.wait_for_url("/sign-in");

    // The auditor: a stream's history as of now, and the hash chain verified (and recorded).
    browser.delete_cookies();
    sign_in(&browser, &haven, "demo-auditor");
    browser.go(&haven.url("/audit"));
    browser.type_into("#stream", "incident-demo-case-k1");
    browser.click("#show-history");
    browser.wait_for_url("stream=incident-demo-case-k1");
    assert_eq!(browser.count("#history tr") - 1, 2, "the demo case's two events");
    let history = browser.text("#history");
    assert!(history.contains("incidents.CaseOpened") && history.contains("incidents.ReferralMade"), "{history}");
    assert!(history.contains("\"caseId\":\"demo-case-k1\""), "what each event recorded is shown: {history}");
    browser.click("#verify");
    browser.wait_for_url("/audit/verify");
    assert_eq!(browser.text("#chain-verdict"), "The chain is intact.");
    let checked: u64 = browser.text("#events-checked").parse().unwrap();
    assert!(checked >= api["checkpoint"].as_u64().unwrap(), "every event of the log was checked: {checked}");
    browser.screenshot(&shots.join("audit-chain-verified.png"));
}
