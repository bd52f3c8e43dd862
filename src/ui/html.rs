//! The UI's HTML: the page frame, tables of rows, and charts drawn as
//! inline SVG on the server, so the pages need no script and no network.

use std::fmt::Write;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

pub use crate::orchestrator::escape_html as escape;

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}\
header{background:#1d2330;color:#fff;padding:.6em 1.5em;display:flex;gap:1.5em;align-items:center}\
header a{color:#cfd6e4;text-decoration:none}header a.here{color:#fff;font-weight:600}\
header strong{margin-right:1em}main{padding:1em 1.5em;max-width:1200px}\
table{border-collapse:collapse;background:#fff;margin:.5em 0 1.5em}\
td,th{border:1px solid #dde1e8;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#eef0f4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.succeeded{color:#1a7f37}.failed{color:#cf222e}.running{color:#9a6700}.skipped,.paused{color:#6e7781}\
pre{background:#fff;border:1px solid #dde1e8;padding:.6em;white-space:pre-wrap;max-width:1100px}\
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:1em}\
figure{background:#fff;border:1px solid #dde1e8;margin:0;padding:.6em}\
figcaption{font-weight:600;margin-bottom:.4em}details{margin:.3em 0}\
input[type=search]{width:28em;padding:.3em}";

/// A whole page: the navigation, `title` and `body`. `refresh` reloads it
/// every few seconds (a run is going).
pub fn page(title: &str, here: &str, body: &str, refresh: bool) -> String {
    let mut out = String::from("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    if refresh {
        out.push_str("<meta http-equiv=\"refresh\" content=\"5\">");
    }
    let _ = write!(
        out,
        "<title>{} · soundlake</title><style>{STYLE}</style></head><body><header>\
         <strong>soundlake</strong>",
        escape(title)
    );
    for (path, name) in [
        ("/ui/runs", "Runs"),
        ("/ui/tables", "Tables"),
        ("/ui/charts", "Charts"),
        ("/ui/similar", "Similar tracks"),
    ] {
        let class = if name == here { " class=\"here\"" } else { "" };
        let _ = write!(out, "<a href=\"{path}\"{class}>{name}</a>");
    }
    let _ = write!(
        out,
        "</header><main><h1>{}</h1>\n{body}</main></body></html>\n",
        escape(title)
    );
    out
}

/// Every cell of `batches` as text (NULL as nothing), row by row.
pub fn cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("every type displays"))
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    out
}

/// Rows as an HTML table, numbers right-aligned, `link` turning a cell
/// into a link (column name, value) -> href.
pub fn rows(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    link: impl Fn(&str, &str) -> Option<String>,
) -> String {
    let mut out = String::from("<table><tr>");
    for field in schema.fields() {
        let _ = write!(out, "<th>{}</th>", escape(field.name()));
    }
    out.push_str("</tr>\n");
    for row in cells(batches) {
        out.push_str("<tr>");
        for (field, text) in schema.fields().iter().zip(&row) {
            let class = if field.data_type().is_numeric() {
                " class=\"n\""
            } else {
                ""
            };
            let cell = match link(field.name(), text) {
                Some(href) => format!("<a href=\"{}\">{}</a>", escape(&href), escape(text)),
                None => escape(text),
            };
            let _ = write!(out, "<td{class}>{cell}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// Horizontal bars, one per `(label, value)`, the value printed beside.
pub fn bars(items: &[(String, f64)], unit: &str) -> String {
    let (width, label_width, row) = (520.0, 210.0, 22.0);
    let most = items
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let height = row * items.len() as f64 + 4.0;
    let mut out = format!(
        "<svg role=\"img\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         font-size=\"12\">"
    );
    for (i, (label, value)) in items.iter().enumerate() {
        let y = row * i as f64 + 2.0;
        let length = (width - label_width - 120.0) * value / most;
        let _ = write!(
            out,
            "<g class=\"bar\" data-label=\"{label}\" data-value=\"{value}\">\
             <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{short}</text>\
             <rect x=\"{label_width}\" y=\"{y}\" width=\"{length:.1}\" height=\"{h}\" fill=\"#4c6ef5\"/>\
             <text x=\"{vx:.1}\" y=\"{ty}\">{shown}{unit}</text></g>",
            label = escape(label),
            lx = label_width - 6.0,
            ty = y + 14.0,
            short = escape(&shorten(label, 32)),
            h = row - 6.0,
            vx = label_width + length + 4.0,
            shown = number(*value),
        );
    }
    out.push_str("</svg>");
    out
}

/// A grid of cells shaded by value: rows by columns.
pub fn heatmap(rows: &[String], columns: &[String], values: &[Vec<f64>]) -> String {
    let (cell, left, top) = (18.0, 40.0, 18.0);
    let width = left + cell * columns.len() as f64;
    let height = top + cell * rows.len() as f64;
    let most = values
        .iter()
        .flatten()
        .copied()
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut out = format!(
        "<svg role=\"img\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         font-size=\"10\">"
    );
    for (j, column) in columns.iter().enumerate() {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"12\" text-anchor=\"middle\">{}</text>",
            left + cell * (j as f64 + 0.5),
            escape(column)
        );
    }
    for (i, (name, line)) in rows.iter().zip(values).enumerate() {
        let y = top + cell * i as f64;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 4.0,
            y + 13.0,
            escape(name)
        );
        for (j, value) in line.iter().enumerate() {
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{}\" height=\"{}\" fill=\"#4c6ef5\" \
                 fill-opacity=\"{:.3}\"><title>{} {}: {}</title></rect>",
                left + cell * j as f64,
                cell - 1.0,
                cell - 1.0,
                0.05 + 0.95 * value / most,
                escape(name),
                escape(&columns[j]),
                number(*value)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// `text` as a URL query value: every byte but letters, digits and
/// `-._~` percent-encoded.
pub fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A time as every page shows it.
pub fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format(crate::orchestrator::TIME_FORMAT).to_string()
}

/// A number as a person reads it: integers whole, others to 3 places.
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

fn shorten(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(most - 1).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_pages_show_is_escaped() {
        let page = page("<script>", "Runs", "", false);
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));
        let chart = bars(&[("<b>\"x\"</b>".into(), 2.5)], "");
        assert!(!chart.contains("<b>") && chart.contains("2.500"));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query_value("run-1/gold.x#2 é"),
            "run-1%2Fgold.x%232%20%C3%A9"
        );
    }

    #[test]
    fn bars_are_as_long_as_their_values() {
        let chart = bars(&[("a".into(), 10.0), ("b".into(), 5.0)], " plays");
        let widths: Vec<f64> = chart
            .split("width=\"")
            .skip(2)
            .filter_map(|w| w.split('"').next()?.parse().ok())
            .collect();
        assert_eq!(widths.len(), 2, "{chart}");
        assert!((widths[0] - 2.0 * widths[1]).abs() < 0.2, "{widths:?}");
        assert!(chart.contains("10 plays") && chart.contains("5 plays"));
    }
}
