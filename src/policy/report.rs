//! `sealgate exception report`: every exception, its state and how much it
//! was used (from audit logs), for an auditor, in Markdown or HTML (with a
//! small inline SVG chart of use per day).

use super::registry::{Registry, State};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Use of one exception, from `exception_used` / `legacy_read` records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Number of uses.
    pub count: u64,
    /// Bytes written unencrypted.
    pub bytes: u64,
    /// Uses per day.
    pub per_day: BTreeMap<NaiveDate, u64>,
    /// Refused attempts (`exception_denied`).
    pub denied: u64,
}

/// Tallies audit-log lines (already verified) by exception id.
pub fn tally(lines: &[serde_json::Value]) -> BTreeMap<String, Usage> {
    let mut out: BTreeMap<String, Usage> = BTreeMap::new();
    for l in lines {
        let ev = &l["event"];
        let Some(id) = ev["exception"].as_str() else {
            continue;
        };
        let u = out.entry(id.to_owned()).or_default();
        match ev["event"].as_str() {
            Some("exception_used") | Some("legacy_read") => {
                u.count += 1;
                u.bytes += ev["size"].as_u64().unwrap_or(0);
                if let Some(day) = l["time"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                {
                    *u.per_day.entry(day.date_naive()).or_default() += 1;
                }
            }
            Some("exception_denied") => u.denied += 1,
            _ => {}
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn allows(e: &super::registry::Exception) -> String {
    e.allows
        .iter()
        .map(|a| {
            serde_json::to_value(a)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report as Markdown.
pub fn markdown(reg: &Registry, usage: &BTreeMap<String, Usage>, now: DateTime<Utc>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Exception report\n\nGenerated {now}. Registry: {} records.\n",
        reg.len()
    );
    let _ = writeln!(
        o,
        "| id | state | buckets | allows | approver | decision | valid | uses | bytes | denied |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for (id, (e, _)) in &reg.exceptions {
        let u = usage.get(id).cloned().unwrap_or_default();
        let state = reg
            .state(id, now)
            .map(|s| s.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "| {id} | {state} | {} | {} | {} | {} | {} – {} | {} | {} | {} |",
            e.buckets.join(", "),
            allows(e),
            e.approver,
            e.decision_ref,
            e.starts.format("%Y-%m-%d"),
            e.expires.format("%Y-%m-%d"),
            u.count,
            u.bytes,
            u.denied
        );
    }
    for (id, (e, rev)) in &reg.exceptions {
        let _ = writeln!(o, "\n## {id}\n");
        let _ = writeln!(
            o,
            "- reason: {}\n- risk: {}\n- classification: {}",
            e.reason, e.risk, e.classification
        );
        if let Some(r) = rev {
            let _ = writeln!(o, "- **revoked** by {}: {}", r.by, r.reason);
        }
        if let Some(u) = usage.get(id) {
            for (day, n) in &u.per_day {
                let _ = writeln!(o, "- {day}: {n} use(s)");
            }
        }
    }
    o
}

/// The report as a self-contained HTML page with an SVG chart of uses per day.
pub fn html(reg: &Registry, usage: &BTreeMap<String, Usage>, now: DateTime<Utc>) -> String {
    let mut o = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sealgate exception report</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}\
         .revoked,.expired{color:#a00}.active{color:#060}</style></head><body>",
    );
    let _ = write!(
        o,
        "<h1>Exception report</h1><p>Generated {}. Registry: {} records.</p>",
        esc(&now.to_string()),
        reg.len()
    );
    o.push_str("<table><tr><th>id</th><th>state</th><th>buckets</th><th>allows</th><th>approver</th><th>decision</th><th>valid</th><th>uses</th><th>bytes</th><th>denied</th></tr>");
    for (id, (e, _)) in &reg.exceptions {
        let u = usage.get(id).cloned().unwrap_or_default();
        let state = reg.state(id, now).unwrap_or(State::Expired);
        let class = state.to_string().replace(' ', "-");
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"{class}\">{state}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} – {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(id),
            esc(&e.buckets.join(", ")),
            esc(&allows(e)),
            esc(&e.approver),
            esc(&e.decision_ref),
            e.starts.format("%Y-%m-%d"),
            e.expires.format("%Y-%m-%d"),
            u.count,
            u.bytes,
            u.denied
        );
    }
    o.push_str("</table><h2>Uses per day</h2>");
    // One bar per (exception, day), scaled to the busiest day.
    let bars: Vec<(String, NaiveDate, u64)> = usage
        .iter()
        .flat_map(|(id, u)| u.per_day.iter().map(move |(d, n)| (id.clone(), *d, *n)))
        .collect();
    let max = bars.iter().map(|b| b.2).max().unwrap_or(1).max(1);
    let height = 20 * bars.len().max(1) + 10;
    let _ = write!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"{height}\">"
    );
    for (i, (id, day, n)) in bars.iter().enumerate() {
        let w = 400 * n / max;
        let y = 20 * i + 5;
        let _ = write!(
            o,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{} {day}</text><rect x=\"200\" y=\"{y}\" width=\"{w}\" height=\"14\" fill=\"#4a7\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{n}</text>",
            y + 12,
            esc(id),
            205 + w,
            y + 12
        );
    }
    o.push_str("</svg></body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_uses_bytes_days_and_denials() {
        let lines: Vec<serde_json::Value> = [
            r#"{"time":"2026-11-27T10:00:00Z","event":{"event":"exception_used","exception":"EX-1","size":100}}"#,
            r#"{"time":"2026-11-28T10:00:00Z","event":{"event":"exception_used","exception":"EX-1","size":50}}"#,
            r#"{"time":"2026-11-28T11:00:00Z","event":{"event":"exception_denied","exception":"EX-1"}}"#,
            r#"{"time":"2026-11-28T11:00:00Z","event":{"event":"integrity_failure","bucket":"b"}}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let t = tally(&lines);
        let u = &t["EX-1"];
        assert_eq!((u.count, u.bytes, u.denied), (2, 150, 1));
        assert_eq!(u.per_day.len(), 2);
        assert_eq!(t.len(), 1);
        assert_eq!(esc("<a&\"b\">"), "&lt;a&amp;&quot;b&quot;&gt;");
    }
}
