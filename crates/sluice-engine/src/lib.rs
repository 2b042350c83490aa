//! The Reverse ETL engine: load a workspace, check it against its warehouses, and sync a
//! model: extract (sorted by id) → diff against each mapping's checkpoint → consent gate →
//! deliver in batches → move the checkpoint only for what was delivered, withheld or rejected.

pub mod alerts;
pub mod change;
pub mod metrics;
pub mod plan;
pub mod privacy;
pub mod report;
pub mod roles;
pub mod scheduler;
pub mod sync;
pub mod telemetry;
pub mod whatif;
pub mod workspace;

pub use change::{apply, Actor, Applied, ApplyOptions, ChangeError, ColumnCheck};
pub use report::{MappingReport, RunReport};
pub use sync::{sync_model, SyncError};
pub use workspace::{Workspace, WorkspaceError};
