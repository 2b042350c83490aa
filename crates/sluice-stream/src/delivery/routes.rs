//! The destinations an event is routed to, as the writer stores them in `events.routes`: a JSON
//! array of destination ids, matched by equality. Exact by construction: no id can match another
//! by substring or through a separator, whatever characters ids hold (finding 15).

use serde_json::Value;

/// The stored form of a list of destination ids.
pub fn encode(ids: &[&str]) -> String {
    Value::from(ids.to_vec()).to_string()
}

/// Whether the stored `routes` name `dest` exactly. Logs written before this format (`,a,b,`)
/// are still read, element by element.
pub fn contains(routes: &str, dest: &str) -> bool {
    if routes.starts_with('[') {
        match serde_json::from_str::<Vec<String>>(routes) {
            Ok(ids) => ids.iter().any(|id| id == dest),
            Err(_) => false,
        }
    } else {
        routes.split(',').any(|id| !id.is_empty() && id == dest)
    }
}

/// SQL true when `events.routes` (as `routes_col`) names the destination `dest_expr`; for
/// queries over the log, the same rule as [`contains`].
pub fn sql_contains(routes_col: &str, dest_expr: &str) -> String {
    format!(
        "(case when substr({routes_col}, 1, 1) = '[' \
         then exists(select 1 from json_each({routes_col}) where value = {dest_expr}) \
         else instr({routes_col}, ',' || {dest_expr} || ',') > 0 end)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_exactly_whatever_they_hold() {
        let r = encode(&["ab", "a,b", "x\"y"]);
        assert!(contains(&r, "ab") && contains(&r, "a,b") && contains(&r, "x\"y"));
        for other in ["a", "b", "", ",", "a,", "x", "y", "[", "\"ab\""] {
            assert!(!contains(&r, other), "{other} matched {r}");
        }
        assert!(!contains(&encode(&[]), ""));
        // the earlier format
        assert!(contains(",ab,c,", "ab") && !contains(",ab,c,", "a") && !contains(",,", ""));
        assert!(!contains("[not json", "a"));
    }
}
