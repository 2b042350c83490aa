//! The state-store suite: every test is written once, as a function of a [`Fixture`], and
//! `suite!` runs it on both backends (`tests::sqlite::NAME`, `tests::postgres::NAME`).
//! PostgreSQL tests each get their own schema of the test database (dropped after) and fail,
//! never skip, when PostgreSQL is down.

mod alerts;
mod leases;
mod postgres;
mod privacy;
mod store;

use crate::{PostgresState, StateStore};

/// A fresh, empty state on one backend; [`Fixture::open`] opens one more store (one more
/// connection) on it.
pub(crate) struct Fixture {
    dir: tempfile::TempDir,
    pg: Option<PostgresState>,
}

impl Fixture {
    pub(crate) fn sqlite() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), pg: None }
    }

    pub(crate) fn postgres() -> Self {
        let pg = PostgresState { url: sluice_testkit::pg_url(), schema: sluice_testkit::unique_name("state") };
        Self { dir: tempfile::tempdir().unwrap(), pg: Some(pg) }
    }

    /// The local state folder.
    pub(crate) fn dir(&self) -> std::path::PathBuf {
        self.dir.path().join(".sluice")
    }

    /// A store on this state.
    pub(crate) fn open(&self) -> StateStore {
        match &self.pg {
            None => StateStore::open(&self.dir()).unwrap(),
            Some(pg) => StateStore::open_postgres(pg, &self.dir()).expect("PostgreSQL must be running"),
        }
    }

    /// The PostgreSQL state, if this fixture is on PostgreSQL.
    pub(crate) fn pg(&self) -> Option<&PostgresState> {
        self.pg.as_ref()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(pg) = &self.pg {
            if let Ok(mut c) = ::postgres::Client::connect(&pg.url, ::postgres::NoTls) {
                let _ = c.batch_execute(&format!(
                    "drop schema if exists {} cascade",
                    crate::postgres::quote_ident(&pg.schema)
                ));
            }
        }
    }
}

/// Runs each listed test on SQLite and on PostgreSQL.
macro_rules! suite {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $test() { super::$module::$test(super::Fixture::sqlite()) } )*
        }
        mod postgres_backend {
            $( #[test] fn $test() { super::$module::$test(super::Fixture::postgres()) } )*
        }
    };
}

suite!(
    store::workspace_round_trip,
    store::checkpoint_pages_in_byte_order_and_writes_atomically,
    store::last_write_of_an_id_wins_in_a_batch,
    store::rekey_swaps_keys_atomically,
    store::counts_and_snapshot_generations,
    store::runs_and_usage,
    store::failed_entries_are_listed_from_their_own_index,
    store::audit_log_is_append_only,
    store::tokens_are_stored_hashed_and_authenticate,
    store::two_stores_share_one_state,
    store::proof_of_consent_round_trips,
    privacy::suppress_unsuppress_and_statuses_persist_with_audit_and_version,
    privacy::a_failed_delete_fails_the_request_and_ids_repeat_safely,
    alerts::alert_state_fires_resolves_and_keeps_the_last_value,
    alerts::notifications_are_retried_until_sent_or_dropped,
    leases::tokens_grow_and_a_released_lease_is_free,
    leases::racing_workers_exactly_one_wins,
    leases::expired_lease_is_taken_over_and_the_old_holder_is_fenced,
    leases::no_write_of_the_old_holder_lands_after_a_takeover,
    leases::a_lease_covers_only_its_own_model,
    leases::hostile_model_and_worker_names_are_data,
    leases::bad_ttl_is_refused_naming_it,
);
