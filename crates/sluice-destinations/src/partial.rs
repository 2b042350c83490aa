//! Per-record failures in a vendor's partial-success answer, mapped back to one [`Outcome`] per
//! item: by the index the vendor gives (Braze `errors[].index`, Mixpanel `failed_records[].index`,
//! Amplitude's field → indices, Customer.io `batch_index`, Google's `operations[N]`) or by the
//! identifier it echoes (Iterable's failed user ids, Salesforce's external id). A record the
//! vendor names carries its reason; it is `user`-class and not retryable unless the vendor says
//! it may be retried. Records it does not name were taken.

use crate::error::{excerpt, MAX_MESSAGE_BODY};
use crate::{DeliveryError, ErrorClass, Outcome};
use std::collections::HashMap;

/// Which record a vendor's per-record error concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// Its place in the request (0-based).
    Index(usize),
    /// The identifier the vendor saw.
    Id(String),
}

/// One per-record error as the vendor reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// The record it concerns.
    pub key: RecordKey,
    /// The vendor's reason, in its words.
    pub reason: String,
    /// The vendor says a retry may succeed (e.g. a per-user throttle).
    pub retryable: bool,
}

impl RecordFailure {
    /// A permanent rejection of the record at `index`.
    pub fn at(index: usize, reason: impl Into<String>) -> Self {
        Self { key: RecordKey::Index(index), reason: reason.into(), retryable: false }
    }

    /// A permanent rejection of the record the vendor knows as `id`.
    pub fn of(id: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { key: RecordKey::Id(id.into()), reason: reason.into(), retryable: false }
    }

    /// Marks it retryable.
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }
}

/// One outcome per request entry: `n` entries whose vendor identifiers are `ids` (the same
/// length, or empty when the vendor names records by index only). A failure naming an index
/// out of range or an unknown id concerns no record of this request and is ignored (logged);
/// several failures of one record are joined.
pub fn outcomes(n: usize, ids: &[&str], failures: impl IntoIterator<Item = RecordFailure>) -> Vec<Outcome> {
    let by_id: HashMap<&str, Vec<usize>> = ids.iter().enumerate().fold(HashMap::new(), |mut m, (i, id)| {
        m.entry(*id).or_default().push(i);
        m
    });
    let mut out: Vec<Outcome> = (0..n).map(|_| Ok(())).collect();
    for f in failures {
        let idx: Vec<usize> = match &f.key {
            RecordKey::Index(i) if *i < n => vec![*i],
            RecordKey::Id(id) if by_id.contains_key(id.as_str()) => by_id[id.as_str()].clone(),
            other => {
                tracing::warn!(record = ?other, reason = %excerpt(&f.reason, 100), "the vendor named a record not in the request");
                continue;
            }
        };
        for i in idx {
            let reason = excerpt(&f.reason, MAX_MESSAGE_BODY);
            out[i] = match std::mem::replace(&mut out[i], Ok(())) {
                Ok(()) => Err(DeliveryError {
                    class: if f.retryable { ErrorClass::External } else { ErrorClass::User },
                    retryable: f.retryable,
                    message: format!("the vendor rejected the record: {reason}"),
                    retry_after: None,
                }),
                Err(mut e) => {
                    if e.message.len() < 2 * MAX_MESSAGE_BODY {
                        e.message.push_str("; ");
                        e.message.push_str(&reason);
                    }
                    // permanent wins: retrying will not fix the other reason
                    e.retryable &= f.retryable;
                    if !e.retryable {
                        e.class = ErrorClass::User;
                    }
                    Err(e)
                }
            };
        }
    }
    out
}

/// Spreads the outcomes of the entries of a request back over the items that made them:
/// `entry_of[i]` is the entry item `i` went into (`None`: it sent nothing, so it keeps
/// `own[i]`).
pub fn spread(entries: &[Outcome], entry_of: &[Option<usize>], own: Vec<Outcome>) -> Vec<Outcome> {
    own.into_iter()
        .zip(entry_of)
        .map(|(o, e)| match e {
            Some(e) => entries.get(*e).cloned().unwrap_or(o),
            None => o,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_by_index_and_by_id_land_on_their_records() {
        let out = outcomes(
            4,
            &["a", "b", "c", "b"],
            [
                RecordFailure::at(0, "invalid email"),
                RecordFailure::of("b", "user not found"),
                RecordFailure::at(9, "out of range: ignored"),
                RecordFailure::of("zzz", "unknown: ignored"),
                RecordFailure::at(2, "throttled user").retryable(),
            ],
        );
        let e0 = out[0].clone().unwrap_err();
        assert!(!e0.retryable && e0.class == ErrorClass::User && e0.message.contains("invalid email"));
        assert!(out[1].as_ref().unwrap_err().message.contains("user not found"));
        assert!(out[3].as_ref().unwrap_err().message.contains("user not found"), "every entry with that id");
        let e2 = out[2].clone().unwrap_err();
        assert!(e2.retryable && e2.class == ErrorClass::External);
        assert_eq!(out.iter().filter(|o| o.is_ok()).count(), 0);
        let ok = outcomes(2, &[], [RecordFailure::at(1, "x")]);
        assert!(ok[0].is_ok() && ok[1].is_err());
    }

    #[test]
    fn two_reasons_join_and_permanent_wins() {
        let out = outcomes(1, &[], [RecordFailure::at(0, "slow").retryable(), RecordFailure::at(0, "bad time")]);
        let e = out[0].clone().unwrap_err();
        assert!(!e.retryable && e.message.contains("slow") && e.message.contains("bad time"));
    }

    #[test]
    fn spread_maps_entries_back_to_items() {
        let entries = vec![Ok(()), Err(DeliveryError::rejected("no"))];
        let own = vec![Ok(()), Ok(()), Err(DeliveryError::rejected("not sent")), Ok(())];
        let out = spread(&entries, &[Some(0), Some(1), None, Some(1)], own);
        assert!(out[0].is_ok() && out[1].is_err() && out[3].is_err());
        assert!(out[2].as_ref().unwrap_err().message.contains("not sent"));
    }
}
