use super::MetaConfig;
use crate::audience::{IdentifierFields, Vendor};
use crate::http::Retries;
use crate::throttle::{classify, meta_graph, Answer};
use crate::vendor::{unreadable, Req, VendorClient};
use crate::{BuildContext, DeliveryError, Destination, ErrorClass, Item, Outcome, RetryPolicy};
use serde_json::{json, Value};
use sluice_core::Change;

/// Meta's limit of rows per request.
pub const MAX_ROWS: usize = 10_000;

/// Adds records to and removes them from a Custom Audience.
pub struct MetaSink {
    config: MetaConfig,
    ids: IdentifierFields,
    client: VendorClient,
    url: String,
    auth: String,
    schema: Vec<&'static str>,
}

/// One row of the payload and the item it came from.
#[derive(Clone)]
struct Row {
    item: usize,
    cells: Vec<String>,
}

impl MetaSink {
    /// A sink for `config`.
    pub fn new(config: MetaConfig, ctx: &BuildContext) -> Self {
        let opts = config.options.clone().unwrap_or_else(|| crate::vendor::VendorOptions {
            http: Default::default(),
            rate: crate::ratelimit::Rate::new(super::config::RATE, None).expect("the vendor rate is valid"),
        });
        let client = VendorClient::new("meta", &opts, ctx, Some(meta_graph));
        let url = format!("{}/{}/{}/users", config.endpoint, config.api_version, config.audience_id);
        let auth = format!("Bearer {}", config.access_token.expose());
        let ids = config.identifiers();
        let mut schema = vec!["EXTERN_ID"];
        if ids.email_field.is_some() {
            schema.push("EMAIL");
        }
        if ids.phone_field.is_some() {
            schema.push("PHONE");
        }
        Self { config, ids, client, url, auth, schema }
    }

    /// The payload row of an added or updated record: its id, then the hashes (empty when a
    /// record has one identifier but not the other), or why it has no usable identifier.
    fn row(&self, item: &Item) -> Result<Vec<String>, DeliveryError> {
        let (email, phone) = self.ids.hashed(&item.data_value(), Vendor::Meta).map_err(DeliveryError::rejected)?;
        let mut cells = vec![item.id.clone()];
        if self.ids.email_field.is_some() {
            cells.push(email.unwrap_or_default());
        }
        if self.ids.phone_field.is_some() {
            cells.push(phone.unwrap_or_default());
        }
        Ok(cells)
    }

    /// Sends rows (`remove`: `DELETE`, schema `EXTERN_ID`), finding the invalid ones by
    /// halving; returns one outcome per row.
    fn send(&self, rows: &[Row], remove: bool) -> Vec<Outcome> {
        if rows.is_empty() {
            return Vec::new();
        }
        let schema: Vec<&str> = if remove { vec!["EXTERN_ID"] } else { self.schema.clone() };
        let data: Vec<&[String]> = rows.iter().map(|r| &r.cells[..schema.len()]).collect();
        let body = json!({"payload": {"schema": schema, "data": data}}).to_string();
        let headers = [("Authorization", self.auth.as_str())];
        let method = if remove { "DELETE" } else { "POST" };
        let req = Req { method, url: &self.url, headers: &headers, body: Some(("application/json", body.as_bytes())) };
        // a 4xx that is not throttling comes back as an answer: it is read here, not retried
        let permanent = |a: &Answer| (400..500).contains(&a.status) && a.status != 429 && a.status != 408;
        let a = match self
            .client
            .call(req, Retries::Transport, |a| permanent(a) && meta_graph(a.status, &a.body).is_none())
        {
            Ok(a) => a,
            Err(e) => return rows.iter().map(|_| Err(e.clone())).collect(),
        };
        if !a.ok() {
            let e = graph_error(&a);
            if !e.retryable && rows.len() > 1 {
                return self.halves_after(rows, remove, &e);
            }
            return rows.iter().map(|_| Err(e.clone())).collect();
        }
        let Some(v) = a.json().filter(|v| v["num_received"].is_u64()) else {
            let e = unreadable("Graph answer with `num_received`", &a);
            return rows.iter().map(|_| Err(e.clone())).collect();
        };
        let invalid = v["num_invalid_entries"].as_u64().unwrap_or(0) as usize;
        if invalid == 0 {
            return rows.iter().map(|_| Ok(())).collect();
        }
        // rows Meta names (by a value it quotes) carry its reason
        let samples = samples(&v["invalid_entry_samples"]);
        let mut out: Vec<Outcome> = rows
            .iter()
            .map(|r| match samples.iter().find(|(k, _)| r.cells.iter().any(|c| !c.is_empty() && c == k)) {
                Some((_, why)) => Err(DeliveryError::rejected(format!("Meta: invalid entry: {why}"))),
                None => Ok(()),
            })
            .collect();
        let named = out.iter().filter(|o| o.is_err()).count();
        if invalid > named {
            let rest: Vec<usize> = (0..rows.len()).filter(|i| out[*i].is_ok()).collect();
            if rows.len() == 1 || rest.len() == 1 {
                for i in rest.iter().take(invalid - named) {
                    out[*i] = Err(DeliveryError::rejected(format!(
                        "Meta counted this row as invalid (num_invalid_entries {invalid}) without saying why"
                    )));
                }
            } else if !rest.is_empty() {
                let again: Vec<Row> = rest.iter().map(|i| rows[*i].clone()).collect();
                tracing::debug!(rows = again.len(), invalid, named, "finding the rows Meta counted invalid");
                for (i, o) in rest.into_iter().zip(self.halves(&again, remove)) {
                    out[i] = o;
                }
            }
        }
        out
    }

    /// After Meta refused a whole request: the halves are sent to find the rows at fault; when
    /// every row of the first half gets the same refusal, it is the request's (a deleted
    /// audience, a missing permission), not a row's, and the rest are not sent (about log2(rows)
    /// requests, not one per row).
    fn halves_after(&self, rows: &[Row], remove: bool, e: &DeliveryError) -> Vec<Outcome> {
        let (a, b) = rows.split_at(rows.len() / 2);
        let mut out = self.send(a, remove);
        if out.iter().all(|o| o.as_ref().is_err_and(|x| x.message == e.message)) {
            out.extend(b.iter().map(|_| Err(e.clone())));
            return out;
        }
        out.extend(self.send(b, remove));
        out
    }

    fn halves(&self, rows: &[Row], remove: bool) -> Vec<Outcome> {
        let (a, b) = rows.split_at(rows.len() / 2);
        let mut out = self.send(a, remove);
        out.extend(self.send(b, remove));
        out
    }
}

/// `invalid_entry_samples`: an object of value → reason, or a list of values.
fn samples(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Object(m) => m
            .iter()
            .take(MAX_ROWS)
            .map(|(k, why)| (k.clone(), why.as_str().map(str::to_string).unwrap_or_else(|| why.to_string())))
            .collect(),
        Value::Array(a) => a
            .iter()
            .take(MAX_ROWS)
            .filter_map(|x| x.as_str())
            .map(|k| (k.to_string(), "listed in invalid_entry_samples".to_string()))
            .collect(),
        _ => Vec::new(),
    }
}

/// A Graph error answer: 190 (and 102) means the token is bad — the configuration's fault,
/// retryable so the records wait for a new token; anything else as [`classify`] says.
fn graph_error(a: &Answer) -> DeliveryError {
    let v = a.json().unwrap_or(Value::Null);
    let code = v["error"]["code"].as_i64();
    if matches!(code, Some(190 | 102)) {
        return DeliveryError {
            class: ErrorClass::User,
            retryable: true,
            message: format!(
                "HTTP {}: Graph error {}: the access token is invalid or expired: {}",
                a.status,
                code.unwrap_or_default(),
                v["error"]["message"].as_str().unwrap_or_default()
            ),
            retry_after: None,
        };
    }
    classify(a, Some(meta_graph))
}

impl Destination for MetaSink {
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        let mut out: Vec<Outcome> = items.iter().map(|_| Ok(())).collect();
        let (mut adds, mut removes) = (Vec::new(), Vec::new());
        for (i, item) in items.iter().enumerate() {
            if item.action == Change::Deleted {
                removes.push(Row { item: i, cells: vec![item.id.clone()] });
                continue;
            }
            match self.row(item) {
                Ok(cells) => adds.push(Row { item: i, cells }),
                Err(e) => out[i] = Err(e),
            }
        }
        for (rows, remove) in [(adds, false), (removes, true)] {
            for chunk in rows.chunks(MAX_ROWS) {
                for (r, o) in chunk.iter().zip(self.send(chunk, remove)) {
                    out[r.item] = o;
                }
            }
        }
        out
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(self.client.policy())
    }
}
