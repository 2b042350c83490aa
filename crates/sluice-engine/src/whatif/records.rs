//! Counting a model's records under two workspaces: one read-only scan, rows streamed in id
//! order (duplicated and NULL ids are skipped, as a sync rejects them), each decided twice.

use super::{Affected, Impact, Reach, Scope, WhatIf};
use crate::workspace::Workspace;
use sluice_core::parse_consent;
use sluice_state::StateStore;
use sluice_warehouse::{resolve_column, IdOrder, Row, ScanNeeds};

/// Rows between two progress reports.
const PROGRESS_EVERY: u64 = 1024;

/// One destination's counters and decisions.
struct Line<'a> {
    dest: &'a str,
    old: Reach,
    new: Reach,
    gains: u64,
    loses: u64,
    /// The mapping's checkpoint, when its keys follow the scan's order: (mapping id, held).
    held: Option<(i64, u64)>,
}

/// Counts `a`'s records for its destinations and appends the lines to `out`.
pub(super) fn count(
    store: &StateStore,
    old: &Workspace,
    new: &Workspace,
    a: &Affected<'_>,
    progress: &mut dyn FnMut(&str, u64),
    out: &mut WhatIf,
) {
    let (ws, model) = match a.new {
        Some(m) => (new, m),
        None => (old, a.old.expect("a model of either workspace")),
    };
    let fail = |out: &mut WhatIf, msg: String| {
        for d in &a.destinations {
            out.impacts.push(Impact {
                destination: d.to_string(),
                scope: Scope::Records,
                model: Some(a.id.to_string()),
                gains: 0,
                loses: 0,
                loses_held: None,
                error: Some(msg.clone()),
            });
        }
    };
    if let (Some(o), Some(n)) = (a.old, a.new) {
        if o.sql != n.sql || o.source != n.source || o.unique_id != n.unique_id {
            out.notes.push(format!(
                "model `{}`: its SQL, source or unique id changes; both sides are counted on the new query's rows",
                a.id
            ));
        }
    }
    let _span = tracing::info_span!("what_if", model = %a.id, source = %model.source).entered();
    let mut warehouse = match ws.warehouse(&model.source) {
        Ok(w) => w,
        Err(e) => return fail(out, format!("source `{}`: {e}", model.source)),
    };
    // a model that never ends on a warehouse without its own statement timeout is interrupted,
    // as a sync's scan is
    let _watchdog = warehouse.scan_deadline().map(|d| crate::sync::Watchdog::start(&mut *warehouse, d));
    let cols = match warehouse.columns(&model.sql) {
        Ok(c) => c,
        Err(e) => return fail(out, e.to_string()),
    };
    let id_col = match resolve_column(&cols, &model.unique_id) {
        Ok(i) => cols[i].clone(),
        Err(e) => return fail(out, format!("unique_id: {e}")),
    };
    let order = match warehouse.id_order(&model.sql, &id_col) {
        Ok(o) => o,
        Err(e) => return fail(out, e.to_string()),
    };
    let column_of = |c: &str| resolve_column(&cols, c).ok();
    let mut lines: Vec<Line<'_>> = Vec::new();
    for d in &a.destinations {
        let held = match store.find_mapping_id(a.id, d) {
            Ok(Some(id)) => match store.mapping_id_order(id) {
                Ok(Some(o)) if IdOrder::parse(&o) == Some(order) => Some((id, 0)),
                _ => None,
            },
            _ => None,
        };
        lines.push(Line {
            dest: d,
            old: Reach::of(&old.file, a.old, d, &column_of),
            new: Reach::of(&new.file, a.new, d, &column_of),
            gains: 0,
            loses: 0,
            held,
        });
    }
    let mut typed: Vec<usize> = lines
        .iter()
        .flat_map(|l| [&l.old, &l.new])
        .filter_map(|r| match r {
            Reach::Gate(g) => Some(g.required().iter().filter_map(|q| q.column)),
            Reach::Never => None,
        })
        .flatten()
        .collect();
    typed.sort_unstable();
    typed.dedup();
    let needs = ScanNeeds { typed: Some(typed), raw: false, only_ids: None };
    let mut rows = 0u64;
    // the id being read and its first row; `true` once a second row had the same id
    let mut group: Option<(String, Row, bool)> = None;
    let mut held_err: Option<String> = None;
    let mut decide = |row: &Row, id: &str, lines: &mut [Line<'_>]| {
        let value = |c: usize| row.values.get(c).map(parse_consent).unwrap_or(sluice_core::ConsentValue::Invalid);
        for l in lines.iter_mut() {
            match (l.old.sends(value), l.new.sends(value)) {
                (false, true) => l.gains += 1,
                (true, false) => {
                    l.loses += 1;
                    if let (Some((mapping, held)), Some(key)) = (&mut l.held, order.key(id)) {
                        match store.checkpoint_entry(*mapping, &key) {
                            Ok(Some(e)) if e.held.is_some() => *held += 1,
                            Ok(_) => {}
                            Err(e) => held_err = Some(e.to_string()),
                        }
                    }
                }
                _ => {}
            }
        }
    };
    let scanned = warehouse.scan(&model.sql, &id_col, order, &needs, &mut |mut row| {
        rows += 1;
        if rows.is_multiple_of(PROGRESS_EVERY) {
            progress(a.id, rows);
        }
        let Some(id) = row.id.take() else { return Ok(()) };
        match &mut group {
            Some((gid, _, dup)) if *gid == id => *dup = true,
            _ => {
                if let Some((gid, first, false)) = group.replace((id, row, false)) {
                    decide(&first, &gid, &mut lines);
                }
            }
        }
        Ok(())
    });
    if let Err(e) = scanned {
        return fail(out, e.to_string());
    }
    if let Some((gid, first, false)) = group.take() {
        decide(&first, &gid, &mut lines);
    }
    progress(a.id, rows);
    if let Some(e) = held_err {
        out.notes.push(format!("model `{}`: held counts unavailable: {e}", a.id));
    }
    for l in lines {
        out.impacts.push(Impact {
            destination: l.dest.to_string(),
            scope: Scope::Records,
            model: Some(a.id.to_string()),
            gains: l.gains,
            loses: l.loses,
            loses_held: l.held.map(|(_, n)| n),
            error: None,
        });
    }
}
