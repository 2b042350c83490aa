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
    if let Some(found) = contains_plain(routes, dest) {
        return found;
    }
    if routes.starts_with('[') {
        match serde_json::from_str::<Vec<String>>(routes) {
            Ok(ids) => ids.iter().any(|id| id == dest),
            Err(_) => false,
        }
    } else {
        routes.split(',').any(|id| !id.is_empty() && id == dest)
    }
}

/// [`contains`] without allocating, for the usual stored form: a JSON array of strings with no
/// escapes (each element is then its id, verbatim). `None` for anything else (escapes, the
/// earlier format, malformed text): the caller parses it.
fn contains_plain(routes: &str, dest: &str) -> Option<bool> {
    let b = routes.as_bytes();
    if b.first() != Some(&b'[') || b.contains(&b'\\') {
        return None;
    }
    let mut i = 1;
    let mut found = false;
    if b.get(i) == Some(&b']') {
        return (i + 1 == b.len()).then_some(false);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let len = b[i + 1..].iter().position(|&c| c == b'"')?;
        // a control character would be invalid JSON: let the parser decide
        if b[i + 1..i + 1 + len].iter().any(|&c| c < 0x20) {
            return None;
        }
        found |= &b[i + 1..i + 1 + len] == dest.as_bytes();
        i += len + 2;
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b']') if i + 1 == b.len() => return Some(found),
            _ => return None,
        }
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
        // the allocation-free reading agrees with the parser on every form
        for routes in [
            r#"[]"#,
            r#"["a"]"#,
            r#"["a","b"]"#,
            r#"["a,b","c"]"#,
            r#"["x\"y"]"#,
            r#"["a"]x"#,
            r#"["a""#,
            r#"["a",]"#,
            r#"[ "a"]"#,
            "[\"a\tb\"]",
            r#"["é","ü"]"#,
            r#"["",""]"#,
        ] {
            for dest in ["a", "b", "a,b", "c", "x\"y", "", "é", "a\tb"] {
                let parsed =
                    serde_json::from_str::<Vec<String>>(routes).is_ok_and(|ids| ids.iter().any(|id| id == dest));
                assert_eq!(contains(routes, dest), parsed, "{routes} {dest}");
            }
        }
    }
}
