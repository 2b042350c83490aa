//! One module per subcommand.

pub mod apply;
pub mod audit;
pub mod bench;
pub mod bench_bus;
pub mod bench_ingest;
pub mod overview;
pub mod preview;
pub mod privacy;
pub mod quickstart;
pub mod stream;
pub mod sync;

use anyhow::Context;
use sluice_engine::Workspace;
use sluice_state::StateLocation;
use sluice_state::StateStore;

/// Opens the state store and the applied workspace.
pub fn open(state: &StateLocation) -> anyhow::Result<(StateStore, Workspace)> {
    let store = StateStore::open_at(state).context("opening the state store")?;
    let ws = Workspace::load(&store)?;
    Ok((store, ws))
}

/// Prints JSON to stdout.
pub fn print_json(v: &impl serde::Serialize) {
    outln!("{}", serde_json::to_string_pretty(v).expect("serializes"));
}
