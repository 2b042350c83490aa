//! Human-readable tables.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, ContentArrangement, Table};
use sluice_engine::{MappingReport, RunReport, Workspace};

/// A table with a header row.
pub fn table<'a>(header: impl IntoIterator<Item = &'a str>) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(header);
    t
}

/// A JSON value as a table cell.
pub fn cell(v: &serde_json::Value) -> Cell {
    Cell::new(match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "NULL".into(),
        other => other.to_string(),
    })
}

/// "Advertising (C0004): 12, Analytics (C0002): 3".
pub fn why_withheld(m: &MappingReport, ws: &Workspace) -> String {
    if m.withheld_by_category.is_empty() {
        return "-".into();
    }
    m.withheld_by_category
        .iter()
        .map(|(id, n)| {
            let name = ws.file.consent_categories.iter().find(|c| &c.id == id).map(|c| c.name.as_str()).unwrap_or(id);
            format!("no {name} consent ({id}): {n}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints a run's delivery overview.
pub fn run_report(r: &RunReport, ws: &Workspace) {
    outln!(
        "Sync run #{} of model `{}`: {} — {} rows extracted, {} rejected, {} ms",
        r.run_id,
        r.model,
        r.status,
        r.extracted,
        r.rejected,
        r.duration_ms
    );
    let mut t = table([
        "Destination",
        "Status",
        "Added",
        "Updated",
        "Deleted",
        "Delivered",
        "Failed",
        "Withheld by consent",
        "Why withheld",
    ]);
    for m in &r.mappings {
        t.add_row(vec![
            Cell::new(&m.destination),
            Cell::new(m.status),
            Cell::new(m.added),
            Cell::new(m.updated),
            Cell::new(m.deleted),
            Cell::new(m.delivered),
            Cell::new(m.failed),
            Cell::new(m.withheld_by_consent),
            Cell::new(why_withheld(m, ws)),
        ]);
    }
    outln!("{t}");
    for m in &r.mappings {
        outln!("  {}: {}", m.destination, m.consent_rule);
        if m.withheld_by_privacy_request > 0 {
            outln!("    withheld by privacy requests (suppressed ids): {}", m.withheld_by_privacy_request);
        }
        if m.deleted_on_withdrawal > 0 {
            outln!("    {} deleted because consent was withdrawn (R13, of the deleted)", m.deleted_on_withdrawal);
        }
        for s in m.failure_samples.permanent.iter().chain(&m.failure_samples.retryable).take(3) {
            outln!("    failed {} {}: {}", s.action, s.id, s.error);
        }
    }
    for (reason, n) in &r.rejected_by_reason {
        let samples = r.rejected_samples.get(reason).map(|s| s.join(", ")).unwrap_or_default();
        outln!("  rejected {n} row(s): {} (ids: {samples})", reason.replace('_', " "));
    }
    for (cat, n) in &r.consent_warnings {
        outln!("  warning: {n} row(s) have a NULL or non-boolean {cat} consent value (counted as not consented)");
    }
    for w in &r.warnings {
        outln!("  warning: {w}");
    }
    if let Some(e) = &r.error {
        outln!("  error: {e}");
    }
}
