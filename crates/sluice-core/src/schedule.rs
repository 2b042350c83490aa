//! Model schedules: `manual` (default), `every 15m` / `every 2h` / `every 1d`, or a cron
//! expression (5 fields, UTC).

use chrono::{DateTime, Duration, Utc};

/// The longest `every N` interval, in days (a year and a day).
pub const MAX_INTERVAL_DAYS: i64 = 366;

/// When a model syncs by itself.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Only when asked (`sluice sync`).
    Manual,
    /// At a fixed interval after the previous run started.
    Every(Duration),
    /// At the times a cron expression names (UTC).
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// Parses a schedule; the error says what is accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s == "manual" {
            return Ok(Self::Manual);
        }
        if let Some(every) = s.strip_prefix("every ") {
            let every = every.trim();
            let (n, unit) = every.split_at(every.find(|c: char| !c.is_ascii_digit()).unwrap_or(every.len()));
            let n: i64 = n.parse().map_err(|_| format!("`{s}`: expected e.g. `every 15m`"))?;
            let d = match unit.trim() {
                "m" | "min" | "minutes" => Duration::try_minutes(n),
                "h" | "hours" => Duration::try_hours(n),
                "d" | "days" => Duration::try_days(n),
                other => return Err(format!("`{s}`: unknown unit `{other}` (use m, h or d)")),
            };
            let Some(d) = d.filter(|d| *d <= Self::longest_interval()) else {
                return Err(format!("`{s}`: the longest interval is {} days", MAX_INTERVAL_DAYS));
            };
            if d < Duration::minutes(1) {
                return Err(format!("`{s}`: the shortest interval is 1 minute"));
            }
            return Ok(Self::Every(d));
        }
        croner::Cron::new(s)
            .parse()
            .map(|c| Self::Cron(Box::new(c)))
            .map_err(|e| format!("`{s}` is neither `manual`, `every N(m|h|d)` nor a cron expression: {e}"))
    }

    fn longest_interval() -> Duration {
        Duration::days(MAX_INTERVAL_DAYS)
    }

    /// The next run after the previous one started at `last` (or, never run, after `now`).
    /// Never panics: a time past the calendar's end is no next run.
    pub fn next(&self, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Manual => None,
            Self::Every(d) => match last {
                Some(l) => l.checked_add_signed(*d),
                None => Some(now),
            },
            Self::Cron(c) => c.find_next_occurrence(&last.unwrap_or(now), false).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parses_and_computes_next_runs() {
        let now = t("2026-11-25T10:07:00Z");
        assert!(Schedule::parse("manual").unwrap().next(None, now).is_none());
        let every = Schedule::parse("every 15m").unwrap();
        assert_eq!(every.next(None, now), Some(now), "never run: due now");
        assert_eq!(every.next(Some(now), now), Some(t("2026-11-25T10:22:00Z")));
        let cron = Schedule::parse("0 */6 * * *").unwrap();
        assert_eq!(cron.next(None, now), Some(t("2026-11-25T12:00:00Z")));
        assert!(Schedule::parse("every 30s").unwrap_err().contains("unknown unit"));
        assert!(Schedule::parse("every 0m").unwrap_err().contains("1 minute"));
        assert!(Schedule::parse("sometimes").unwrap_err().contains("cron"));
        for huge in ["every 999999999999999m", "every 100000000d", "every 9223372036854775807h", "every 367d"] {
            assert!(Schedule::parse(huge).unwrap_err().contains("longest interval"), "{huge}");
        }
        assert!(Schedule::parse("every 99999999999999999999m").unwrap_err().contains("expected"));
        let year = Schedule::parse("every 366d").unwrap();
        assert_eq!(year.next(Some(DateTime::<Utc>::MAX_UTC), now), None, "past the calendar's end: no run, no panic");
    }
}
