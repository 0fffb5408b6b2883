//! The pages' frame: escaping, the layout with its navigation, and the error pages.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use haven_authz::Action;

use super::Viewer;

/// Text made safe for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1b1f24;background:#f4f6f8}\
header{background:#123b5c;color:#fff;padding:.6rem 1.5rem;display:flex;gap:1.2rem;align-items:center;flex-wrap:wrap}\
header a{color:#fff;text-decoration:none}header a:hover{text-decoration:underline}header .brand{font-weight:700;font-size:1.1rem}\
header .who{margin-left:auto;font-size:.9rem;opacity:.9}header form{margin:0}header button{background:none;border:1px solid #fff8;color:#fff;padding:.2rem .6rem;border-radius:4px;cursor:pointer}\
main{padding:1.2rem 1.5rem;max-width:80rem;margin:0 auto}h1{font-size:1.5rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:0 0 .6rem}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(24rem,1fr));gap:1rem}.card{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:1rem;margin-bottom:1rem;overflow-x:auto}\
.narrow{max-width:28rem}.stats{display:flex;gap:1rem;flex-wrap:wrap;margin-bottom:1rem}.stat{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:.7rem 1rem;min-width:10rem}\
.stat b{display:block;font-size:1.6rem}.muted{color:#57606a;font-size:.9rem}.notice{background:#fff3cd;border:1px solid #e5c66b;padding:.6rem;border-radius:6px}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e5e8eb}td.n,th.n{text-align:right}\
label{display:block;margin:.5rem 0}input[type=email],input[type=password],input[type=text],input[type=number]{display:block;width:100%;padding:.4rem;margin-top:.2rem;border:1px solid #bbb;border-radius:4px}\
button{background:#123b5c;color:#fff;border:0;padding:.5rem 1rem;border-radius:4px;cursor:pointer;margin-top:.5rem}\
nav.periods a{margin-right:.8rem}.ok{color:#1a7f37;font-weight:700}.bad{color:#cf222e;font-weight:700}svg text{font:11px system-ui,sans-serif;fill:#444}\
@media print{header{display:none}body{background:#fff}.card{border:0}}";

/// A whole page: the navigation shows only what `viewer` may open.
pub fn page(title: &str, viewer: Option<&Viewer>, body: &str) -> Response {
    let mut nav = String::from("<a class=\"brand\" href=\"/\">Haven</a>");
    if let Some(viewer) = viewer {
        nav.push_str("<a href=\"/dashboard\">Dashboard</a>");
        if viewer.caller.principal.grants.iter().any(|grant| {
            let school = grant.scope.school().map(|s| s.as_str().to_owned());
            viewer.may(Action::ReadCase, school.as_deref())
        }) {
            nav.push_str(
                "<a href=\"/registers/lado\">LADO register</a><a href=\"/registers/police\">Police register</a>",
            );
        }
        if viewer.may(Action::ReadAuditTrail, None) {
            nav.push_str("<a href=\"/audit\">Audit</a>");
        }
        nav.push_str("<a href=\"/governors\">Governors' report</a>");
        nav.push_str(&format!(
            "<span class=\"who\">Signed in as <span id=\"principal\">{}</span></span>\
             <form method=\"post\" action=\"/sign-out\"><button id=\"sign-out\" type=\"submit\">Sign out</button></form>",
            escape(viewer.principal_id())
        ));
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{} · Haven</title>\
         <style>{STYLE}</style></head><body><header>{nav}</header><main>{body}</main></body></html>",
        escape(title)
    );
    let mut response = Html(html).into_response();
    // Pages show safeguarding data: never cached, never framed.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, "no-store".parse().expect("a valid header"));
    headers.insert(header::X_FRAME_OPTIONS, "DENY".parse().expect("a valid header"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
            .parse()
            .expect("a valid header"),
    );
    response
}

/// A page saying what went wrong, with its status.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!("<h1>{}</h1><p class=\"card\">{}</p>", status.as_u16(), escape(message));
    (status, page("Error", None, &body)).into_response()
}

/// The page for a signed-in person the policy refuses.
pub fn forbidden(viewer: &Viewer, what: &str) -> Response {
    let body = format!(
        "<h1 id=\"forbidden\">Not available to you</h1><div class=\"card\"><p>Your role does not allow you to see {}.</p>\
         <p><a href=\"/dashboard\">Back to the dashboard</a></p></div>",
        escape(what)
    );
    (StatusCode::FORBIDDEN, page("Not available", Some(viewer), &body)).into_response()
}

/// A date-time for people: `2026-12-07 14:05 UTC`.
pub fn when(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => String::new(),
    }
}

/// A date for people: `2026-12-07`.
pub fn day(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%d").to_string(),
        Err(_) => String::new(),
    }
}

/// The date in Europe/London (where weeks start): `2026-10-19`.
pub fn london_day(secs: i64) -> String {
    let zone = jiff::tz::TimeZone::get("Europe/London").unwrap_or(jiff::tz::TimeZone::UTC);
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.to_zoned_datetime(zone).strftime("%Y-%m-%d").to_string(),
        Err(_) => String::new(),
    }
}

/// A count as someone who may not read the cases behind it sees it: 1 to 4 withheld, as in
/// the governors' report, so a small number cannot point at a learner.
pub fn count_for(count: u64, may_read_cases: bool) -> String {
    let aggregate = haven_reporting::projection::governors::aggregate(count);
    if may_read_cases || !aggregate.suppressed { count.to_string() } else { "fewer than 5".to_owned() }
}

/// An enum's protobuf name as words: `BREACH_CATEGORY_SELF_HARM` → `Self harm`.
pub fn label(name: &str, prefix: &str) -> String {
    let words = name.strip_prefix(prefix).unwrap_or(name).replace('_', " ").to_lowercase();
    let mut chars = words.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(label("BREACH_CATEGORY_SELF_HARM", "BREACH_CATEGORY_"), "Self harm");
    }
}
