//! `${VAR}` substitution in the workspace file.

use crate::validate::{ConfigError, ConfigErrors};

/// Replaces every `${NAME}` in `text` with `lookup(NAME)`. `$${` escapes a literal `${`.
/// Every unset variable is reported, each with the line it is on.
pub fn substitute(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigErrors> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (lineno, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find("${") {
            if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
                out.push_str(&rest[..pos - 1]);
                out.push_str("${");
                rest = &rest[pos + 2..];
                continue;
            }
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 2..];
            match after.find('}') {
                Some(end) => {
                    let name = after[..end].trim();
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => errors.push(ConfigError::new(
                            format!("line {}", lineno + 1),
                            format!("environment variable `{name}` is not set"),
                        )),
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    errors.push(ConfigError::new(format!("line {}", lineno + 1), "unterminated `${` (missing `}`)"));
                    rest = "";
                }
            }
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_reports_unset() {
        let look = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(substitute("a: ${A}/$${B}", look).unwrap(), "a: x/${B}");
        let err = substitute("a: 1\nb: ${MISSING_ONE}", look).unwrap_err();
        assert!(err.to_string().contains("MISSING_ONE"), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
