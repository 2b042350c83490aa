//! What-if (SPEC §12): before a consent change is applied, how many records of each model and
//! how many of the last day's events each destination would gain or lose.
//!
//! Records: every model whose consent decision can differ between the two workspaces for some
//! destination is run read-only against its warehouse (rows streamed, never collected), and each
//! row is decided under both workspaces by THE consent decision ([`Gate`]). Events are the
//! streaming runtime's business (`sluice_stream::whatif`); their counts are added here with
//! [`WhatIf::add_events`] so every surface shows one table.

mod records;
#[cfg(test)]
mod tests;

use crate::workspace::Workspace;
use serde::Serialize;
use sluice_core::{Gate, ModelConfig, WorkspaceFile};
use sluice_state::StateStore;

/// What a change does to who gets data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WhatIf {
    /// One line per (destination, model) whose decision can differ, then one per streaming
    /// destination whose routing can differ.
    pub impacts: Vec<Impact>,
    /// What the counts cannot see or approximate (shown under the table).
    pub notes: Vec<String>,
}

/// What a line of the what-if counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The records of a model (Reverse ETL).
    Records,
    /// The events received in the last 24 hours (streaming).
    EventsLast24h,
}

/// One destination's gains and losses for one model, or for the last day's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Impact {
    /// The destination's id.
    pub destination: String,
    /// Records or events.
    pub scope: Scope,
    /// The model (for [`Scope::Records`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Records/events the new workspace sends to the destination and the old one does not.
    pub gains: u64,
    /// Records/events the old workspace sends to the destination and the new one does not.
    pub loses: u64,
    /// Of the records lost, how many the destination holds now (its checkpoint): they stay there
    /// unless the mapping deletes on withdrawal (R13 `on_withdrawal: delete`), which would delete
    /// them at the next sync. `None` when unknown (events; never synced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loses_held: Option<u64>,
    /// Why this line could not be evaluated (e.g. the warehouse cannot be reached); the counts
    /// are then 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl WhatIf {
    /// Adds the streamed events' line of a destination.
    pub fn add_events(&mut self, destination: &str, gains: u64, loses: u64) {
        self.impacts.push(Impact {
            destination: destination.to_string(),
            scope: Scope::EventsLast24h,
            model: None,
            gains,
            loses,
            loses_held: None,
            error: None,
        });
    }

    /// Whether any line could not be evaluated.
    pub fn incomplete(&self) -> bool {
        self.impacts.iter().any(|i| i.error.is_some())
    }
}

/// Whether a record of `model` can reach destination `dest` under `ws`, and by which gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Never: the model or the mapping is absent, or the destination is absent or disabled (R12).
    Never,
    /// Decided per record by this gate (R1–R5).
    Gate(Gate),
}

impl Reach {
    /// The reach of `model` (absent: `None`) to `dest` under `ws`; `column_of` resolves the
    /// model's consent columns.
    pub(crate) fn of(
        ws: &WorkspaceFile,
        model: Option<&ModelConfig>,
        dest: &str,
        column_of: &dyn Fn(&str) -> Option<usize>,
    ) -> Reach {
        let Some(model) = model else { return Reach::Never };
        if !model.mappings.iter().any(|m| m.destination == dest) {
            return Reach::Never;
        }
        match ws.destinations.iter().find(|d| d.id == dest) {
            Some(d) if d.enabled => {
                Reach::Gate(Gate::build(ws, &sluice_destinations::REGISTRY, model, dest, column_of))
            }
            _ => Reach::Never,
        }
    }

    /// Whether a record whose consent cells `value(column)` returns reaches the destination.
    pub(crate) fn sends(&self, value: impl Fn(usize) -> sluice_core::ConsentValue) -> bool {
        match self {
            Reach::Never => false,
            Reach::Gate(g) => g.decide(value) == sluice_core::consent::Verdict::Send,
        }
    }
}

/// A model present in either workspace, with the destinations whose decision can differ.
pub(crate) struct Affected<'a> {
    pub id: &'a str,
    pub old: Option<&'a ModelConfig>,
    pub new: Option<&'a ModelConfig>,
    pub destinations: Vec<&'a str>,
}

/// The models whose consent decision can differ for some destination between `old` and `new`,
/// decided on the configuration alone (consent columns compared by name): only these are run.
pub(crate) fn affected<'a>(old: &'a WorkspaceFile, new: &'a WorkspaceFile) -> Vec<Affected<'a>> {
    let mut ids: Vec<&str> = new.models.iter().map(|m| m.id.as_str()).collect();
    ids.extend(old.models.iter().map(|m| m.id.as_str()).filter(|id| !new.models.iter().any(|m| m.id == *id)));
    let mut out = Vec::new();
    for id in ids {
        let o = old.models.iter().find(|m| m.id == id);
        let n = new.models.iter().find(|m| m.id == id);
        // the columns both configurations name, so equal names get equal indices
        let mut names: Vec<&str> =
            o.iter().chain(n.iter()).flat_map(|m| m.consent.values()).map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        let column_of = |c: &str| names.iter().position(|n| *n == c);
        let mut dests: Vec<&str> = Vec::new();
        for m in o.iter().chain(n.iter()) {
            for mp in &m.mappings {
                if !dests.contains(&mp.destination.as_str()) {
                    dests.push(&mp.destination);
                }
            }
        }
        let source_changed = match (o, n) {
            (Some(o), Some(n)) => {
                let src = |w: &'a WorkspaceFile, m: &ModelConfig| w.sources.iter().find(|s| s.id == m.source);
                o.sql != n.sql || o.unique_id != n.unique_id || src(old, o) != src(new, n)
            }
            _ => false,
        };
        dests.retain(|d| {
            let (a, b) = (Reach::of(old, o, d, &column_of), Reach::of(new, n, d, &column_of));
            // a new SQL may return other rows: every destination it reaches is re-counted
            a != b || (source_changed && a != Reach::Never)
        });
        if !dests.is_empty() {
            out.push(Affected { id, old: o, new: n, destinations: dests });
        }
    }
    out
}

/// The what-if of replacing `old` by `new` for records: each affected model runs read-only on
/// its warehouse (the new workspace's source if the model is in it, else the old one's); the
/// state is only read (the held counts come from the checkpoints). A model that cannot be run
/// gets its lines with `error` set; the rest is still counted. `progress(model, rows)` hears
/// the rows read so far.
pub fn what_if(store: &StateStore, old: &Workspace, new: &Workspace, progress: &mut dyn FnMut(&str, u64)) -> WhatIf {
    let mut out = WhatIf::default();
    for a in affected(&old.file, &new.file) {
        records::count(store, old, new, &a, progress, &mut out);
    }
    out
}
