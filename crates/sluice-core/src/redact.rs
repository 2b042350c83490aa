//! Credentials inside URLs (`https://user:password@host/…?api_key=…`): what the API, the audit
//! log, `sluice export`, logs and reports show instead of them.

use crate::secret::SET;

/// Whether a URL carries credentials: a user or password, or any query parameter.
pub fn url_has_credentials(raw: &str) -> bool {
    match url::Url::parse(raw) {
        Ok(u) => !u.username().is_empty() || u.password().is_some() || u.query().is_some() || u.fragment().is_some(),
        Err(_) => false,
    }
}

/// The URL with its user information, path, every query value and fragment replaced by `<set>`:
/// `https://u:pw@h/p?api_key=k&x=1` → `https://<set>@h/<set>?api_key=<set>&x=<set>`; scheme,
/// host and port stay. One that does not parse is `<set>` as a whole.
pub fn redact_url(raw: &str) -> String {
    let Ok(u) = url::Url::parse(raw) else { return SET.to_string() };
    let mut out = format!("{}:", u.scheme());
    if u.has_authority() {
        out.push_str("//");
        if !u.username().is_empty() || u.password().is_some() {
            out.push_str(SET);
            out.push('@');
        }
        if let Some(h) = u.host_str() {
            out.push_str(h);
        }
        if let Some(p) = u.port() {
            out.push_str(&format!(":{p}"));
        }
    }
    // a path can be the credential itself (Slack's /services/T/B/<secret>, Discord's
    // /api/webhooks/<id>/<token>, Zapier catch hooks): only the host is shown
    match u.path() {
        "" | "/" => out.push_str(u.path()),
        _ => {
            out.push('/');
            out.push_str(SET);
        }
    }
    if u.query().is_some() {
        let names: Vec<String> = u.query_pairs().map(|(k, _)| format!("{k}={SET}")).collect();
        out.push('?');
        out.push_str(&names.join("&"));
    }
    if u.fragment().is_some() {
        out.push('#');
        out.push_str(SET);
    }
    out
}

/// `text` with every `http://` or `https://` URL in it passed through [`redact_url`] (for error
/// messages that quote a URL, e.g. `https://h/?key=k: connection refused`).
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = ["http://", "https://"].iter().filter_map(|p| rest.find(p)).min() {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end =
            tail.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>')).unwrap_or(tail.len());
        // a URL quoted before `: reason` keeps the colon out of its port
        let mut url = &tail[..end];
        let mut trail = "";
        while let Some(stripped) = url.strip_suffix([':', ',', ';', ')', '.']) {
            trail = &tail[stripped.len()..end];
            url = stripped;
        }
        out.push_str(&redact_url(url));
        out.push_str(trail);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_user_information_and_query_values() {
        assert_eq!(
            redact_url("https://u:pw@hooks.example.com:8443/in?api_key=k1&x=1#frag"),
            "https://<set>@hooks.example.com:8443/<set>?api_key=<set>&x=<set>#<set>"
        );
        assert_eq!(redact_url("https://hooks.example.com/in"), "https://hooks.example.com/<set>");
        assert_eq!(redact_url("https://hooks.slack.com/services/T0/B0/XXsecret"), "https://hooks.slack.com/<set>");
        assert_eq!(redact_url("http://127.0.0.1:9000/"), "http://127.0.0.1:9000/");
        assert_eq!(redact_url("not a url"), "<set>");
        assert!(url_has_credentials("https://key@h/") && !url_has_credentials("https://h/p"));
        let t = redact_urls_in("POST https://u:secret@h/x?token=abc: connection refused (https://h/ok)");
        assert_eq!(t, "POST https://<set>@h/<set>?token=<set>: connection refused (https://h/<set>)");
        assert!(!t.contains("secret") && !t.contains("abc"));
    }
}
