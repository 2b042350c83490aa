//! Customer-list identifiers of the ad platforms (`google_ads`, `meta`): which mapped field
//! holds the email or phone, each vendor's normalisation, and SHA-256 (lowercase hex) of the
//! normalised value. A value that already is 64 hex digits is taken as hashed and passed
//! through (lowercased), as Segment's `processHashing` does.
//!
//! - Google (Customer Match, "Formatting guidelines" and the enhanced-conversions
//!   normalisation, developers.google.com/google-ads/api/docs/remarketing/audience-segments/customer-match/get-started):
//!   email trimmed and lowercased, and for `gmail.com` / `googlemail.com` every `.` before the
//!   `@` removed (Google documents no `+` rule: a `+tag` is kept); phone in E.164 with its `+`.
//! - Meta (Custom Audiences, "Hashing and normalization",
//!   developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences#hash):
//!   email trimmed and lowercased; phone as digits only with its country code, no `+`, no
//!   leading zeros.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use sluice_core::ConfigError;

/// Which vendor's normalisation applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// Google Ads Customer Match.
    Google,
    /// Meta Custom Audiences.
    Meta,
}

/// Where a record's identifiers are, as the destination's settings say.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdentifierFields {
    /// The mapped field that holds the email address (e.g. `email`).
    #[serde(default)]
    pub email_field: Option<String>,
    /// The mapped field that holds the phone number (e.g. `phone`).
    #[serde(default)]
    pub phone_field: Option<String>,
    /// Country calling code (digits, e.g. `1` or `44`) put before phone numbers written
    /// without one (no leading `+` or `00`); without it such numbers are not usable.
    #[serde(default)]
    pub phone_country_code: Option<String>,
}

impl IdentifierFields {
    /// Checks the settings without I/O: at least one field named (unless `optional`), names
    /// not empty, the country code 1–3 digits.
    pub fn check(&self, optional: bool) -> Result<(), ConfigError> {
        for (name, v) in [("email_field", &self.email_field), ("phone_field", &self.phone_field)] {
            if v.as_deref().is_some_and(|f| f.trim().is_empty()) {
                return Err(ConfigError::new(name, "must name a mapped field (e.g. `email`), not be empty"));
            }
        }
        if !optional && self.email_field.is_none() && self.phone_field.is_none() {
            return Err(ConfigError::new(
                "email_field",
                "set `email_field` or `phone_field` (or both): the mapped field that holds each record's email or phone",
            ));
        }
        if let Some(cc) = &self.phone_country_code {
            if cc.is_empty() || cc.len() > 3 || !cc.bytes().all(|b| b.is_ascii_digit()) || cc.starts_with('0') {
                return Err(ConfigError::new(
                    "phone_country_code",
                    format!("`{}` is not a country calling code (1 to 3 digits, e.g. 1 or 44)", cc.escape_debug()),
                ));
            }
        }
        Ok(())
    }

    /// The record's hashed identifiers: (email hash, phone hash), or why none is usable.
    pub fn hashed(&self, data: &serde_json::Value, vendor: Vendor) -> Result<(Option<String>, Option<String>), String> {
        let mut why = Vec::new();
        let mut email = None;
        if let Some(f) = &self.email_field {
            match field_text(data, f) {
                None => why.push(format!("`{f}` is empty or missing")),
                Some(v) => match hashed_email(&v, vendor) {
                    Ok(h) => email = Some(h),
                    Err(e) => why.push(format!("`{f}`: {e}")),
                },
            }
        }
        let mut phone = None;
        if let Some(f) = &self.phone_field {
            match field_text(data, f) {
                None => why.push(format!("`{f}` is empty or missing")),
                Some(v) => match hashed_phone(&v, self.phone_country_code.as_deref(), vendor) {
                    Ok(h) => phone = Some(h),
                    Err(e) => why.push(format!("`{f}`: {e}")),
                },
            }
        }
        if email.is_none() && phone.is_none() {
            return Err(format!("no usable identifier: {}", why.join("; ")));
        }
        Ok((email, phone))
    }
}

/// A mapped field's value as text: strings as they are, numbers in decimal; null, empty or
/// anything else: `None`.
pub fn field_text(data: &serde_json::Value, field: &str) -> Option<String> {
    match data.get(field)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// SHA-256 of `s`, lowercase hex.
pub fn sha256_hex(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` already is a SHA-256 in hex.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The vendor's normalised form of an email address.
pub fn normalize_email(v: &str, vendor: Vendor) -> Result<String, String> {
    let e = v.trim().to_lowercase();
    let (local, domain) = e.split_once('@').ok_or_else(|| "not an email address (no @)".to_string())?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') || e.chars().any(char::is_whitespace) {
        return Err("not an email address".into());
    }
    if vendor == Vendor::Google && (domain == "gmail.com" || domain == "googlemail.com") {
        return Ok(format!("{}@{domain}", local.replace('.', "")));
    }
    Ok(e)
}

/// A phone number in E.164 (`+` and 8–15 digits): written with `+` or `00` and its country
/// code, or national with `country_code` put before it (a leading trunk `0` dropped).
/// Spaces, dashes, dots and parentheses are ignored.
pub fn e164(v: &str, country_code: Option<&str>) -> Result<String, String> {
    let t = v.trim();
    if t.chars().any(|c| !(c.is_ascii_digit() || " -.()+/".contains(c))) {
        return Err("not a phone number (letters or symbols)".into());
    }
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    let full = if t.starts_with('+') {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else if let Some(cc) = country_code {
        format!("{cc}{}", digits.trim_start_matches('0'))
    } else {
        return Err("no country code (write it as +CC…, or set `phone_country_code`)".into());
    };
    if full.starts_with('0') || !(8..=15).contains(&full.len()) {
        return Err("not a phone number in E.164 (country code and 8 to 15 digits)".into());
    }
    Ok(format!("+{full}"))
}

/// The vendor's normalised form of a phone number: E.164 with `+` (Google), digits only (Meta).
pub fn normalize_phone(v: &str, country_code: Option<&str>, vendor: Vendor) -> Result<String, String> {
    let e = e164(v, country_code)?;
    Ok(match vendor {
        Vendor::Google => e,
        Vendor::Meta => e.trim_start_matches('+').to_string(),
    })
}

/// The hash Google or Meta takes for an email (passed through when already hashed).
pub fn hashed_email(v: &str, vendor: Vendor) -> Result<String, String> {
    if is_sha256_hex(v.trim()) {
        return Ok(v.trim().to_ascii_lowercase());
    }
    normalize_email(v, vendor).map(|e| sha256_hex(&e))
}

/// The hash Google or Meta takes for a phone number (passed through when already hashed).
pub fn hashed_phone(v: &str, country_code: Option<&str>, vendor: Vendor) -> Result<String, String> {
    if is_sha256_hex(v.trim()) {
        return Ok(v.trim().to_ascii_lowercase());
    }
    normalize_phone(v, country_code, vendor).map(|p| sha256_hex(&p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_as_each_vendor_normalises_them() {
        assert_eq!(normalize_email("  John.Doe+ads@GMail.com ", Vendor::Google).unwrap(), "johndoe+ads@gmail.com");
        assert_eq!(normalize_email("a.b@googlemail.com", Vendor::Google).unwrap(), "ab@googlemail.com");
        assert_eq!(normalize_email("a.b@example.com", Vendor::Google).unwrap(), "a.b@example.com");
        assert_eq!(normalize_email("  John.Doe@GMail.com ", Vendor::Meta).unwrap(), "john.doe@gmail.com");
        for bad in ["nobody", "@x.com", "a@", "a b@x.com", "a@b@c"] {
            assert!(normalize_email(bad, Vendor::Meta).is_err(), "{bad}");
        }
        // sha256("test@example.com")
        assert_eq!(
            hashed_email(" Test@Example.com", Vendor::Meta).unwrap(),
            "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
        );
        let h = "973DFE463EC85785F5F95AF5BA3906EEDB2D931C24E69824A89EA65DBA4E813B";
        assert_eq!(hashed_email(h, Vendor::Google).unwrap(), h.to_ascii_lowercase(), "already hashed: passed");
    }

    #[test]
    fn phones_in_e164_then_per_vendor() {
        assert_eq!(e164("+1 (415) 555-0100", None).unwrap(), "+14155550100");
        assert_eq!(e164("0044 20 7946 0958", None).unwrap(), "+442079460958");
        assert_eq!(e164("020 7946 0958", Some("44")).unwrap(), "+442079460958");
        assert!(e164("415 555 0100", None).unwrap_err().contains("country code"));
        assert!(e164("+1 555", None).is_err());
        assert!(e164("call me", None).is_err());
        assert_eq!(normalize_phone("+1 415 555 0100", None, Vendor::Meta).unwrap(), "14155550100");
        assert_eq!(normalize_phone("+1 415 555 0100", None, Vendor::Google).unwrap(), "+14155550100");
    }

    #[test]
    fn a_record_without_a_usable_identifier_says_why() {
        let f = IdentifierFields {
            email_field: Some("email".into()),
            phone_field: Some("phone".into()),
            ..Default::default()
        };
        let e = f.hashed(&json!({"email": "nope", "phone": null}), Vendor::Meta).unwrap_err();
        assert!(e.contains("`email`: not an email address") && e.contains("`phone` is empty"), "{e}");
        let (em, ph) = f.hashed(&json!({"email": "a@x.com", "phone": "123"}), Vendor::Meta).unwrap();
        assert!(em.is_some() && ph.is_none(), "one usable identifier is enough");
        assert_eq!(IdentifierFields::default().check(false).unwrap_err().at, "email_field");
        let bad = IdentifierFields {
            email_field: Some("e".into()),
            phone_country_code: Some("+1".into()),
            ..Default::default()
        };
        assert_eq!(bad.check(false).unwrap_err().at, "phone_country_code");
    }
}
