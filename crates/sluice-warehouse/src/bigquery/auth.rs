//! Service-account authentication (OAuth 2.0 JWT bearer grant, RFC 7523, as Google documents
//! it for server-to-server applications): an RS256 JWT signed with the key file's private key
//! (`iss` = `client_email`, `scope`, `aud` = `token_uri`, `iat`, `exp` ≤ 1 h, header `kid` =
//! `private_key_id`) is posted to `token_uri` as
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`; the answer's
//! `access_token` is the bearer token of the API calls until `expires_in` runs out.

use crate::rest::{Http, Request};
use crate::WarehouseError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The OAuth scope of the BigQuery API (`bigquery.readonly` cannot run query jobs; what the
/// account may do comes from its IAM roles, see README "Warehouse permissions").
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";
/// Google's token endpoint, when the key file names none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(120);

/// The fields of a service account key file Sluice reads.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

/// A service account and its current access token.
pub(crate) struct ServiceAccount {
    email: String,
    key: jsonwebtoken::EncodingKey,
    key_id: Option<String>,
    token_uri: String,
    file: PathBuf,
    token: Option<(String, Instant)>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceAccount({})", self.email)
    }
}

impl ServiceAccount {
    /// Reads the key file; errors name the file and what is wrong, never the key.
    pub fn load(path: &Path) -> Result<Self, WarehouseError> {
        let bad = |message: String| WarehouseError::Connect {
            target: format!("BigQuery credentials_file {}", path.display()),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        if meta.len() > 1024 * 1024 {
            return Err(bad("is larger than 1 MB: not a service account key file".into()));
        }
        let text = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let key: KeyFile = serde_json::from_slice(&text).map_err(|e| {
            // serde's message may quote a value (the key): only a missing field is named
            let what = e.to_string();
            let what = if what.starts_with("missing field") {
                what
            } else {
                format!("not valid JSON at line {}, column {}", e.line(), e.column())
            };
            bad(format!("not a service account JSON key: {what}"))
        })?;
        if let Some(kind) = key.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(bad(format!(
                "`type` is `{}`, not `service_account`: create a key for a service account (IAM → Service accounts → Keys)",
                kind.escape_debug()
            )));
        }
        let rsa = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes())
            .map_err(|_| bad("`private_key` is not an RSA private key in PEM form".into()))?;
        let token_uri = key.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        if let Some(why) = sluice_core::cloud::check_base_url(&token_uri) {
            return Err(bad(format!("`token_uri` {why}")));
        }
        Ok(Self {
            email: key.client_email,
            key: rsa,
            key_id: key.private_key_id,
            token_uri,
            file: path.to_path_buf(),
            token: None,
        })
    }

    /// The service account's email (who the queries run as).
    pub fn email(&self) -> &str {
        &self.email
    }

    /// The signed assertion of the JWT bearer grant.
    fn assertion(&self) -> Result<String, WarehouseError> {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            scope: &'a str,
            aud: &'a str,
            iat: u64,
            exp: u64,
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = self.key_id.clone();
        let claims = Claims { iss: &self.email, scope: SCOPE, aud: &self.token_uri, iat: now, exp: now + 3600 };
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| WarehouseError::Connect {
            target: format!("BigQuery credentials_file {}", self.file.display()),
            message: format!("cannot sign the token request: {e}"),
        })
    }

    /// A valid access token, fetched or renewed when needed.
    pub fn token(&mut self, http: &Http, deadline: Instant) -> Result<String, WarehouseError> {
        if let Some((t, until)) = &self.token {
            if Instant::now() + RENEW_BEFORE < *until {
                return Ok(t.clone());
            }
        }
        let assertion = self.assertion()?;
        let body = format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}");
        let req = Request {
            method: "POST",
            url: &self.token_uri,
            headers: vec![],
            body: Some(("application/x-www-form-urlencoded", body.into_bytes())),
        };
        let a = http.send(&req, deadline, |a| a.status == 429 || a.status >= 500)?;
        let refused = |message: String| WarehouseError::Connect {
            target: format!("BigQuery as {}", self.email),
            message: format!("the token endpoint {} refused the service account: {message}", self.token_uri),
        };
        if !a.ok() {
            // OAuth 2.0 error answer (RFC 6749 §5.2): {"error": code, "error_description": text}
            let v = a.json(&http.target, "the token endpoint's error").unwrap_or_default();
            let msg = match (v["error"].as_str(), v["error_description"].as_str()) {
                (Some(code), Some(d)) => format!("{code}: {}", crate::rest::excerpt(d)),
                (Some(code), None) => code.to_string(),
                _ => format!("HTTP {}: {}", a.status, a.excerpt()),
            };
            return Err(refused(msg));
        }
        let v = a.json(&http.target, "the token endpoint's answer")?;
        let Some(token) = v["access_token"].as_str().filter(|t| !t.is_empty() && t.len() < 8192) else {
            return Err(refused("its answer has no `access_token`".into()));
        };
        let secs = v["expires_in"].as_u64().unwrap_or(3600).clamp(60, 86_400);
        self.token = Some((token.to_string(), Instant::now() + Duration::from_secs(secs)));
        Ok(token.to_string())
    }

    /// Forgets the token (the API refused it).
    pub fn forget(&mut self) {
        self.token = None;
    }
}
