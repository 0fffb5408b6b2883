//! Charts as server-drawn SVG: no script, no library, nothing fetched. Every mark carries its
//! value in `data-*` attributes and a `<title>` tooltip, so a person can hover it and a test
//! can read exactly what was drawn.

use super::html::escape;

const WIDTH: f64 = 640.0;

/// Days along the bottom, breaches up the side: a line with a dot per day.
pub fn time_series(id: &str, points: &[(String, u64)]) -> String {
    let height = 220.0;
    let (left, right, top, bottom) = (40.0, 24.0, 10.0, 30.0);
    let max = points.iter().map(|(_, count)| *count).max().unwrap_or(0).max(1) as f64;
    let step = if points.len() > 1 { (WIDTH - left - right) / (points.len() - 1) as f64 } else { 0.0 };
    let x = |index: usize| left + step * index as f64;
    let y = |count: u64| top + (height - top - bottom) * (1.0 - count as f64 / max);
    let mut svg = format!(
        "<svg id=\"{id}\" class=\"chart\" role=\"img\" aria-label=\"Breaches per day\" viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\">"
    );
    for tick in 0..=4 {
        let value = (max * f64::from(tick) / 4.0).round() as u64;
        let ty = y(value);
        svg.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\" stroke=\"#e5e8eb\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{value}</text>",
            WIDTH - right,
            left - 4.0,
            ty + 4.0
        ));
    }
    let path: Vec<String> =
        points.iter().enumerate().map(|(i, (_, count))| format!("{:.1},{:.1}", x(i), y(*count))).collect();
    svg.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"2\" points=\"{}\"/>",
        path.join(" ")
    ));
    for (index, (day, count)) in points.iter().enumerate() {
        svg.push_str(&format!(
            "<circle class=\"point\" data-day=\"{day}\" data-count=\"{count}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1f6feb\"><title>{day}: {count}</title></circle>",
            x(index),
            y(*count),
            day = escape(day),
        ));
        if index % 7 == 0 || index + 1 == points.len() {
            svg.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x(index),
                height - 10.0,
                escape(day.get(5..).unwrap_or(day))
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One horizontal bar per row, labelled, linking to the row's page.
pub fn bars(id: &str, rows: &[(String, String, u64)]) -> String {
    let bar_height = 26.0;
    let label_width = 170.0;
    let height = bar_height * rows.len().max(1) as f64 + 10.0;
    let max = rows.iter().map(|(_, _, count)| *count).max().unwrap_or(0).max(1) as f64;
    let mut svg = format!(
        "<svg id=\"{id}\" class=\"chart\" role=\"img\" aria-label=\"Breaches by school\" viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\">"
    );
    for (index, (key, href, count)) in rows.iter().enumerate() {
        let y = 5.0 + bar_height * index as f64;
        let width = (WIDTH - label_width - 60.0) * *count as f64 / max;
        svg.push_str(&format!(
            "<a href=\"{href}\"><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{key}</text>\
             <rect class=\"bar\" data-key=\"{key}\" data-count=\"{count}\" x=\"{label_width}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\" fill=\"#2da44e\"><title>{key}: {count}</title></rect></a>\
             <text x=\"{:.1}\" y=\"{:.1}\">{count}</text>",
            label_width - 6.0,
            y + bar_height * 0.62,
            bar_height - 6.0,
            label_width + width + 4.0,
            y + bar_height * 0.62,
            key = escape(key),
            href = escape(href),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Rows against the 24 hours of the day (Europe/London), darker for more breaches.
pub fn heat_map(id: &str, rows: &[(String, [u64; 24])]) -> String {
    let (label_width, cell, top) = (170.0, 18.0, 16.0);
    let height = top + cell * rows.len().max(1) as f64 + 4.0;
    let max = rows.iter().flat_map(|(_, hours)| hours.iter().copied()).max().unwrap_or(0).max(1) as f64;
    let mut svg = format!(
        "<svg id=\"{id}\" class=\"chart\" role=\"img\" aria-label=\"Breaches by hour of day\" viewBox=\"0 0 {:.0} {height}\" width=\"100%\" style=\"max-width:46rem\">",
        label_width + cell * 24.0 + 4.0
    );
    for hour in (0..24).step_by(3) {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"11\" text-anchor=\"middle\">{hour:02}</text>",
            label_width + cell * f64::from(hour) + cell / 2.0
        ));
    }
    for (index, (key, hours)) in rows.iter().enumerate() {
        let y = top + cell * index as f64;
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_width - 6.0,
            y + cell * 0.7,
            escape(key)
        ));
        for (hour, count) in hours.iter().enumerate() {
            let strength = *count as f64 / max;
            // From near-white to deep blue.
            let shade = |low: f64, high: f64| (low + (high - low) * strength).round() as u8;
            svg.push_str(&format!(
                "<rect class=\"cell\" data-key=\"{key}\" data-hour=\"{hour}\" data-count=\"{count}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"rgb({},{},{})\"><title>{key} {hour:02}:00: {count}</title></rect>",
                label_width + cell * hour as f64,
                cell - 1.0,
                cell - 1.0,
                shade(246.0, 18.0),
                shade(248.0, 59.0),
                shade(250.0, 140.0),
                key = escape(key),
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_carry_their_values_and_labels_are_escaped() {
        let svg = bars("b", &[("<x>".into(), "/schools/x".into(), 7), ("y".into(), "/schools/y".into(), 3)]);
        assert!(svg.contains("data-key=\"&lt;x&gt;\" data-count=\"7\""), "{svg}");
        assert!(!svg.contains("<x>"));
        let heat = heat_map("h", &[("s".into(), [1; 24])]);
        assert_eq!(heat.matches("class=\"cell\"").count(), 24);
        let line = time_series("t", &[("2026-12-01".into(), 4), ("2026-12-02".into(), 9)]);
        assert!(line.contains("data-day=\"2026-12-02\" data-count=\"9\""));
    }
}
