//! [`Secret`]: a credential that never shows its value by accident.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::Cell;
use std::fmt;

/// What a credential reads as wherever it is shown (APIs, logs, the audit log, `Debug`).
pub const SET: &str = "<set>";

thread_local! {
    static EXPOSED: Cell<u32> = const { Cell::new(0) };
}

/// A string credential (a PostgreSQL URL with its password, a write key). `Debug`, `Display`
/// and `Serialize` show `"<set>"`, never the value; [`Secret::expose`] reads it where it is
/// really needed (connecting, comparing a key), and [`exposing`] serializes values for the
/// places that store them (sealing at rest, `sluice export` after placeholders replaced them).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself: only for connecting, sealing or comparing, never for showing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (an unset credential).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value, to seal, open or replace in place (the credential finder's visitors).
    pub(crate) fn expose_mut(&mut self) -> &mut String {
        &mut self.0
    }
}

impl From<&str> for Secret {
    fn from(v: &str) -> Self {
        Self(v.to_string())
    }
}

impl From<String> for Secret {
    fn from(v: String) -> Self {
        Self(v)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SET)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SET)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if EXPOSED.with(Cell::get) > 0 {
            s.serialize_str(&self.0)
        } else {
            s.serialize_str(SET)
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

/// Runs `f` with every [`Secret`] serialized as its value (on this thread, for the duration of
/// `f` only): for writing a configuration whose credentials were sealed or replaced by
/// placeholders first ([`crate::credentials`]), or for comparing two configurations.
pub fn exposing<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            EXPOSED.with(|c| c.set(c.get() - 1));
        }
    }
    EXPOSED.with(|c| c.set(c.get() + 1));
    let _reset = Reset;
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_its_value_unless_asked() {
        let s = Secret::new("pw_very_secret");
        assert_eq!(format!("{s}"), "<set>");
        assert_eq!(format!("{s:?}"), "<set>");
        assert_eq!(format!("{:?}", Some(&s)), "Some(<set>)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<set>\"");
        assert_eq!(serde_yaml_ng::to_string(&s).unwrap().trim(), "<set>");
        assert_eq!(exposing(|| serde_json::to_string(&s).unwrap()), "\"pw_very_secret\"");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<set>\"", "exposing ends with its closure");
        let back: Secret = serde_json::from_str("\"k\"").unwrap();
        assert_eq!(back.expose(), "k");
    }

    #[test]
    fn exposing_is_undone_by_a_panic() {
        let s = Secret::new("v");
        let _ = std::panic::catch_unwind(|| exposing(|| panic!("boom")));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<set>\"");
    }
}
