//! Leases of Reverse ETL workers: one holder per model, fencing tokens, takeover after expiry.
//! Each "worker" is a thread with its own store (its own connection).

use super::Fixture;
use crate::checkpoint::Write;
use crate::{Entry, Pending, RunStatus, StateError};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn put(id: &str) -> Write {
    Write::Put(Entry { id: id.into(), held: Some(1), pending: Pending::None, proof: None })
}

fn fenced<T: std::fmt::Debug>(r: crate::Result<T>) -> bool {
    match r {
        Err(StateError::Fenced { .. }) => true,
        other => panic!("expected Fenced, got {other:?}"),
    }
}

const LONG: Duration = Duration::from_secs(60);

pub(super) fn tokens_grow_and_a_released_lease_is_free(f: Fixture) {
    let a = f.open();
    let b = f.open();
    assert_eq!(a.current_lease("users").unwrap(), None);
    let first = a.acquire_lease("users", "a", LONG).unwrap().expect("a free model is taken");
    assert_eq!((first.model.as_str(), first.worker.as_str()), ("users", "a"));
    assert_eq!(b.acquire_lease("users", "b", LONG).unwrap(), None, "held: nobody else takes it");
    assert_eq!(a.acquire_lease("users", "a", LONG).unwrap(), None, "not even its holder a second time");
    assert_eq!(b.current_lease("users").unwrap(), Some(first.clone()));
    let other = b.acquire_lease("orders", "b", LONG).unwrap().expect("another model is free");
    let renewed = a.renew_lease(&first, LONG).unwrap();
    assert_eq!(renewed.token, first.token);
    assert!(renewed.expires_at >= first.expires_at);
    assert!(a.release_lease(&first).unwrap());
    assert!(!a.release_lease(&first).unwrap(), "released once");
    assert!(fenced(a.renew_lease(&first, LONG)), "a released lease is not renewed");
    assert_eq!(b.current_lease("users").unwrap(), None);
    let second = b.acquire_lease("users", "b", LONG).unwrap().expect("released: free");
    assert!(second.token > first.token, "{second:?} after {first:?}");
    assert!(b.release_lease(&second).unwrap());
    let third = a.acquire_lease("users", "a", LONG).unwrap().unwrap();
    assert!(third.token > second.token);
    assert_eq!(b.current_lease("orders").unwrap(), Some(other));
}

pub(super) fn racing_workers_exactly_one_wins(f: Fixture) {
    let f = Arc::new(f);
    for round in 0..10 {
        let model = format!("model{round}");
        let barrier = Arc::new(Barrier::new(3));
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let (f, barrier, model) = (f.clone(), barrier.clone(), model.clone());
                std::thread::spawn(move || {
                    let s = f.open();
                    barrier.wait();
                    s.acquire_lease(&model, &format!("w{w}"), LONG).unwrap()
                })
            })
            .collect();
        let won: Vec<_> = workers.into_iter().filter_map(|h| h.join().unwrap()).collect();
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        assert_eq!(f.open().current_lease(&model).unwrap(), Some(won[0].clone()));
    }
}

pub(super) fn expired_lease_is_taken_over_and_the_old_holder_is_fenced(f: Fixture) {
    let mut a = f.open();
    let mut b = f.open();
    let m = a.mapping_id("users", "braze").unwrap();
    let old = a.acquire_lease("users", "a", Duration::from_millis(300)).unwrap().unwrap();
    let run = a.start_run_fenced(&old, "2026-11-27T00:00:00Z").unwrap();
    a.write_checkpoint_fenced(&old, m, &[put("before-expiry")]).unwrap();
    a.set_snapshot_generation_fenced(&old, m, Some(1)).unwrap();
    assert_eq!(b.acquire_lease("users", "b", LONG).unwrap(), None, "not yet expired");
    std::thread::sleep(Duration::from_millis(400));
    // expired, not yet taken: the old holder's writes are refused already
    assert!(fenced(a.write_checkpoint_fenced(&old, m, &[put("after-expiry")])));
    assert!(fenced(a.renew_lease(&old, LONG)), "an expired lease is not renewed: acquire again");
    let new = b.acquire_lease("users", "b", LONG).unwrap().expect("an expired lease is taken over");
    assert!(new.token > old.token);
    // after the takeover: every kind of write of the old holder is refused
    assert!(fenced(a.write_checkpoint_fenced(
        &old,
        m,
        &[put("after-takeover"), Write::Remove("before-expiry".into())]
    )));
    assert!(fenced(a.set_snapshot_generation_fenced(&old, m, Some(99))));
    assert!(fenced(a.rekey_checkpoint_fenced(&old, m, &|k| Some(format!("re-{k}")))));
    assert!(fenced(a.start_run_fenced(&old, "2026-11-27T00:00:05Z")));
    assert!(fenced(a.finish_run_fenced(&old, run, "2026-11-27T00:00:06Z", RunStatus::Ok, &serde_json::json!({}))));
    assert!(!a.release_lease(&old).unwrap(), "the old lease cannot release the new one");
    assert_eq!(a.current_lease("users").unwrap(), Some(new.clone()));
    // the new holder finishes the job
    let run2 = b.start_run_fenced(&new, "2026-11-27T00:00:07Z").unwrap();
    assert_eq!(b.rekey_checkpoint_fenced(&new, m, &|k| Some(k.to_string())).unwrap(), 0);
    b.write_checkpoint_fenced(&new, m, &[put("by-b")]).unwrap();
    b.finish_run_fenced(&new, run2, "2026-11-27T00:00:08Z", RunStatus::Ok, &serde_json::json!({})).unwrap();
    let ids: Vec<String> = b.checkpoint_page(m, None, 10).unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["before-expiry", "by-b"], "nothing the old holder wrote after expiry is visible");
    assert_eq!(b.snapshot_generation(m).unwrap(), Some(1));
    let runs = b.runs(Some("users"), 10).unwrap();
    assert_eq!(
        runs.iter().map(|r| (r.id, r.status)).collect::<Vec<_>>(),
        [(run2, RunStatus::Ok), (run, RunStatus::Interrupted)]
    );
}

pub(super) fn no_write_of_the_old_holder_lands_after_a_takeover(f: Fixture) {
    let f = Arc::new(f);
    let mapping = f.open().mapping_id("users", "braze").unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lease = f.open().acquire_lease("users", "a", Duration::from_millis(250)).unwrap().unwrap();
    // worker a writes as fast as it can, never renewing: its lease runs out mid-stream
    let writer = {
        let (f, stop, lease) = (f.clone(), stop.clone(), lease.clone());
        std::thread::spawn(move || {
            let mut s = f.open();
            let (mut ok, mut refused) = (0u32, 0u32);
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                match s.write_checkpoint_fenced(&lease, mapping, &[put(&format!("a{n:08}"))]) {
                    Ok(()) => ok += 1,
                    Err(StateError::Fenced { .. }) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            (ok, refused)
        })
    };
    let b = f.open();
    let t = Instant::now();
    let new = loop {
        if let Some(l) = b.acquire_lease("users", "b", LONG).unwrap() {
            break l;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the expired lease was never taken over");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(new.token > lease.token);
    let seen = b.checkpoint_page(mapping, None, 1_000_000).unwrap();
    std::thread::sleep(Duration::from_millis(200)); // a keeps trying meanwhile
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, refused) = writer.join().unwrap();
    assert!(ok > 0 && refused > 0, "a wrote before expiry and was refused after: {ok} / {refused}");
    assert_eq!(seen.len(), ok as usize, "every write a was told succeeded was there at the takeover");
    let after = b.checkpoint_page(mapping, None, 1_000_000).unwrap();
    assert_eq!(after, seen, "nothing of a landed after the takeover");
}

pub(super) fn a_lease_covers_only_its_own_model(f: Fixture) {
    let mut s = f.open();
    let users = s.mapping_id("users", "braze").unwrap();
    let orders = s.mapping_id("orders", "braze").unwrap();
    let lease = s.acquire_lease("users", "a", LONG).unwrap().unwrap();
    let other = s.acquire_lease("orders", "b", LONG).unwrap().unwrap();
    let orders_run = s.start_run_fenced(&other, "t").unwrap();
    assert!(fenced(s.write_checkpoint_fenced(&lease, orders, &[put("x")])));
    assert!(fenced(s.set_snapshot_generation_fenced(&lease, orders, Some(1))));
    assert!(fenced(s.rekey_checkpoint_fenced(&lease, orders, &|k| Some(k.to_string()))));
    assert!(fenced(s.finish_run_fenced(&lease, orders_run, "t", RunStatus::Ok, &serde_json::json!({}))));
    assert!(fenced(s.write_checkpoint_fenced(&lease, 424242, &[put("x")])), "an unknown mapping");
    assert_eq!(s.checkpoint_page(orders, None, 10).unwrap(), vec![]);
    assert_eq!(s.snapshot_generation(orders).unwrap(), None);
    assert_eq!(s.runs(Some("orders"), 1).unwrap()[0].status, RunStatus::Running);
    s.write_checkpoint_fenced(&lease, users, &[put("x")]).unwrap();
    assert_eq!(s.checkpoint_held(users).unwrap(), 1);
}

pub(super) fn hostile_model_and_worker_names_are_data(f: Fixture) {
    let s = f.open();
    let model = "users'; drop table leases; --";
    let worker = "w\"); delete from runs; --é";
    let l = s.acquire_lease(model, worker, LONG).unwrap().unwrap();
    assert_eq!(s.current_lease(model).unwrap(), Some(l.clone()));
    assert_eq!(s.acquire_lease("users", "a", LONG).unwrap().map(|l| l.token), Some(1), "another model");
    // NUL: SQLite keeps it, PostgreSQL refuses it with an error (never a panic, never a lease)
    match s.acquire_lease("a\0b", "w", LONG) {
        Ok(got) => assert!(!s.is_postgres() && got.is_some()),
        Err(e) => assert!(s.is_postgres() && matches!(e, StateError::Postgres { .. }), "{e}"),
    }
    assert!(s.release_lease(&l).unwrap());
}

pub(super) fn bad_ttl_is_refused_naming_it(f: Fixture) {
    let s = f.open();
    for ttl in [Duration::ZERO, Duration::from_secs(2 * 24 * 3600)] {
        let err = s.acquire_lease("users", "a", ttl).unwrap_err();
        assert!(matches!(&err, StateError::Settings(m) if m.contains("lease ttl")), "{err}");
    }
    assert_eq!(s.current_lease("users").unwrap(), None);
}
