//! Charts drawn on the server as SVG (no script): a sync run's delivery overview as a funnel
//! (extracted → rejected → withheld by consent per category → delivered / failed) and runs over
//! time. Colours come from the stylesheet (classes), never from inline styles.

use super::{category_label, num};
use maud::{html, Markup};
use serde_json::Value;
use sluice_core::WorkspaceFile;

/// A count in a report (0 when absent or not a number).
pub fn n(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// One bar of the funnel.
struct Stage {
    label: String,
    value: u64,
    class: &'static str,
}

const W: u32 = 640;
const LABEL_W: u32 = 250;
const BAR_H: u32 = 22;
const GAP: u32 = 8;

fn bars(title: &str, stages: &[Stage]) -> Markup {
    let max = stages.iter().map(|s| s.value).max().unwrap_or(0).max(1);
    let height = stages.len() as u32 * (BAR_H + GAP) + GAP;
    let room = W - LABEL_W - 70;
    html! {
        svg.chart viewBox={ "0 0 " (W) " " (height) } width=(W) height=(height) role="img" aria-label=(title) {
            title { (title) }
            @for (i, s) in stages.iter().enumerate() {
                @let y = GAP + i as u32 * (BAR_H + GAP);
                @let w = if s.value == 0 { 0 } else { ((s.value as f64 / max as f64) * room as f64).round().max(2.0) as u32 };
                text.label x=(LABEL_W - 8) y=(y + BAR_H / 2 + 5) text-anchor="end" { (s.label) }
                rect class=(s.class) x=(LABEL_W) y=(y) width=(w) height=(BAR_H) rx="3" {}
                text.value x=(LABEL_W + w + 6) y=(y + BAR_H / 2 + 5) { (num(s.value)) }
            }
        }
    }
}

/// The funnel of one mapping of run `run`, with its samples.
pub fn funnel(ws: &WorkspaceFile, run: &Value, m: &Value) -> Markup {
    let mut stages = vec![
        Stage { label: "Extracted".into(), value: n(m, "extracted"), class: "bar-extracted" },
        Stage { label: "Rejected (bad or duplicate id)".into(), value: n(m, "rejected"), class: "bar-rejected" },
    ];
    let by_cat = m.get("withheld_by_category").and_then(Value::as_object);
    match by_cat {
        Some(cats) if !cats.is_empty() => {
            for (cat, v) in cats {
                stages.push(Stage {
                    label: format!("Withheld: {}", category_label(ws, cat)),
                    value: v.as_u64().unwrap_or(0),
                    class: "bar-withheld",
                });
            }
        }
        _ => stages.push(Stage {
            label: "Withheld by consent".into(),
            value: n(m, "withheld_by_consent"),
            class: "bar-withheld",
        }),
    }
    stages.push(Stage { label: "Unchanged (already held)".into(), value: n(m, "unchanged"), class: "bar-unchanged" });
    if n(m, "deleted_on_withdrawal") > 0 {
        // R13: its own outcome (also counted in deleted, delivered or failed)
        stages.push(Stage {
            label: "Deleted: consent withdrawn".into(),
            value: n(m, "deleted_on_withdrawal"),
            class: "bar-withheld",
        });
    }
    stages.push(Stage { label: "Delivered".into(), value: n(m, "delivered"), class: "bar-delivered" });
    stages.push(Stage { label: "Failed".into(), value: n(m, "failed"), class: "bar-failed" });
    let dest = m.get("destination").and_then(Value::as_str).unwrap_or("?");
    let title = format!("Delivery overview for {dest}");
    let samples = m.get("failure_samples");
    let rejected = run.get("rejected_samples").and_then(Value::as_object);
    html! {
        figure.funnel {
            (bars(&title, &stages))
            figcaption {
                "Added " (num(n(m, "added"))) ", updated " (num(n(m, "updated"))) ", deleted " (num(n(m, "deleted")))
                @if n(m, "deleted_on_withdrawal") > 0 {
                    " (of the deleted, " (num(n(m, "deleted_on_withdrawal"))) " because consent was withdrawn)"
                }
                " · withheld by consent " (num(n(m, "withheld_by_consent")))
                @if let Some(code) = m.get("discard_code").and_then(Value::as_str) { " (" code { (code) } ")" }
                " · failed: " (num(n(m, "failed_retryable"))) " retryable, " (num(n(m, "failed_permanent"))) " permanent"
                " · retried " (num(n(m, "retried")))
            }
            @if let Some(rule) = m.get("consent_rule").and_then(Value::as_str) {
                p.muted { "Consent rule: " (rule) }
            }
        }
        @if let Some(r) = rejected.filter(|r| !r.is_empty()) {
            details.samples {
                summary { "Rejected rows (samples)" }
                ul { @for (reason, ids) in r {
                    li { code { (reason) } ": " @for (i, id) in ids.as_array().into_iter().flatten().enumerate() {
                        @if i > 0 { ", " } (id.as_str().unwrap_or_default()) } }
                } }
            }
        }
        @for kind in ["retryable", "permanent"] {
            @let list = samples.and_then(|s| s.get(kind)).and_then(Value::as_array);
            @if let Some(list) = list.filter(|l| !l.is_empty()) {
                details.samples {
                    summary { "Failed, " (kind) " (" (list.len()) " samples)" }
                    ul { @for s in list {
                        li {
                            "id " code { (s.get("id").and_then(Value::as_str).unwrap_or_default()) } " · "
                            (s.get("action").and_then(Value::as_str).unwrap_or_default()) " · "
                            (s.get("error").and_then(Value::as_str).unwrap_or_default())
                            @if let Some(p) = s.get("payload").filter(|p| !p.is_null()) {
                                pre { (serde_json::to_string_pretty(p).unwrap_or_default()) }
                            }
                        }
                    } }
                }
            }
        }
    }
}

/// Finished runs over time (oldest left): delivered, withheld and failed per run, stacked.
pub fn over_time(runs: &[Value]) -> Markup {
    let runs: Vec<&Value> =
        runs.iter().rev().filter(|r| r.get("status").and_then(Value::as_str) != Some("running")).collect();
    let totals: Vec<(u64, u64, u64, i64)> = runs
        .iter()
        .map(|r| {
            let ms = r.get("mappings").and_then(Value::as_array);
            let sum = |k: &str| ms.map_or(0, |ms| ms.iter().map(|m| n(m, k)).sum::<u64>());
            (
                sum("delivered"),
                sum("withheld_by_consent"),
                sum("failed"),
                r.get("run_id").and_then(Value::as_i64).unwrap_or(0),
            )
        })
        .collect();
    let max = totals.iter().map(|(a, b, c, _)| a + b + c).max().unwrap_or(0).max(1);
    let (h, top, col) = (140u32, 10u32, 28u32);
    let width = (40 + totals.len() as u32 * col).max(320);
    html! {
        svg.chart viewBox={ "0 0 " (width) " " (h + 30) } width=(width) height=(h + 30) role="img" aria-label="Records per run over time" {
            title { "Delivered, withheld by consent and failed records per run, oldest first" }
            line.axis x1="30" y1=(top + h) x2=(width) y2=(top + h) {}
            text.label x="26" y=(top + 8) text-anchor="end" { (num(max)) }
            @for (i, (d, w, f, id)) in totals.iter().enumerate() {
                @let x = 36 + i as u32 * col;
                @let hd = (*d as f64 / max as f64 * h as f64).round() as u32;
                @let hw = (*w as f64 / max as f64 * h as f64).round() as u32;
                @let hf = (*f as f64 / max as f64 * h as f64).round() as u32;
                rect.bar-delivered x=(x) y=(top + h - hd) width="20" height=(hd) { title { "run " (id) ": " (d) " delivered" } }
                rect.bar-withheld x=(x) y=(top + h - hd - hw) width="20" height=(hw) { title { "run " (id) ": " (w) " withheld by consent" } }
                rect.bar-failed x=(x) y=(top + h - hd - hw - hf) width="20" height=(hf) { title { "run " (id) ": " (f) " failed" } }
                text.label x=(x + 10) y=(top + h + 16) text-anchor="middle" { (id) }
            }
        }
        p.legend { span.key.bar-delivered {} " delivered " span.key.bar-withheld {} " withheld by consent " span.key.bar-failed {} " failed" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withdrawal_deletes_are_their_own_outcome_in_the_funnel() {
        let ws = WorkspaceFile::default();
        let m = serde_json::json!({"destination": "ads", "extracted": 3, "deleted": 2, "deleted_on_withdrawal": 2,
            "delivered": 2, "withheld_by_consent": 2});
        let html = funnel(&ws, &serde_json::json!({}), &m).into_string();
        assert!(html.contains("Deleted: consent withdrawn"), "{html}");
        assert!(html.contains("because consent was withdrawn"), "{html}");
        let none = serde_json::json!({"destination": "ads", "extracted": 3, "delivered": 3});
        assert!(!funnel(&ws, &serde_json::json!({}), &none).into_string().contains("withdrawn"));
    }
}
