use super::config::{MatchKey, MAX_OPERATIONS};
use super::GoogleAdsConfig;
use crate::audience::{IdentifierFields, Vendor};
use crate::http::Retries;
use crate::partial::{outcomes, RecordFailure};
use crate::throttle::google;
use crate::vendor::{unreadable, Req, VendorClient};
use crate::{BuildContext, DeliveryError, Destination, Item, Outcome, RetryPolicy};
use serde_json::{json, Value};
use sluice_core::Change;
use std::time::Duration;

/// Longest wait between two polls of a job.
const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

/// Adds records to and removes them from a Customer Match list through offline user data jobs.
pub struct GoogleAdsSink {
    config: GoogleAdsConfig,
    ids: IdentifierFields,
    client: VendorClient,
    base: String,
    auth: String,
}

impl GoogleAdsSink {
    /// A sink for `config`.
    pub fn new(config: GoogleAdsConfig, ctx: &BuildContext) -> Self {
        let opts = config.options.clone().unwrap_or_else(|| crate::vendor::VendorOptions {
            http: Default::default(),
            rate: crate::ratelimit::Rate::new(super::config::RATE, None).expect("the vendor rate is valid"),
        });
        let client = VendorClient::new("google_ads", &opts, ctx, Some(google));
        let base = format!("{}/{}", config.endpoint, config.api_version);
        let auth = format!("Bearer {}", config.access_token.expose());
        let ids = config.identifiers();
        Self { config, ids, client, base, auth }
    }

    /// The `userIdentifiers` of a record, or why it has none usable.
    fn identifiers(&self, item: &Item) -> Result<Vec<Value>, DeliveryError> {
        if self.config.match_key == MatchKey::CrmId {
            return Ok(vec![json!({"thirdPartyUserId": item.id})]);
        }
        if item.action == Change::Deleted {
            return Err(DeliveryError::rejected(
                "not supported: a contact_info list removes people by their hashed email/phone, and a deleted \
                 record's fields are gone (use a CRM_ID list with match_key: crm_id to remove by id)",
            ));
        }
        let (email, phone) = self.ids.hashed(&item.data_value(), Vendor::Google).map_err(DeliveryError::rejected)?;
        let mut v = Vec::new();
        if let Some(e) = email {
            v.push(json!({"hashedEmail": e}));
        }
        if let Some(p) = phone {
            v.push(json!({"hashedPhoneNumber": p}));
        }
        Ok(v)
    }

    fn post(&self, url: &str, body: &Value) -> Result<Value, DeliveryError> {
        let body = body.to_string();
        let mut headers =
            vec![("Authorization", self.auth.as_str()), ("developer-token", self.config.developer_token.expose())];
        if let Some(l) = &self.config.login_customer_id {
            headers.push(("login-customer-id", l.as_str()));
        }
        let req = Req { method: "POST", url, headers: &headers, body: Some(("application/json", body.as_bytes())) };
        let a = self.client.call(req, Retries::Transport, |a| a.status == 401 || a.status == 403)?;
        if a.status == 401 || a.status == 403 {
            // the credentials' fault, not the records': retryable (they wait for a fixed token)
            return Err(DeliveryError {
                class: crate::ErrorClass::User,
                retryable: true,
                message: format!("HTTP {}: Google Ads refused the credentials: {}", a.status, a.text()),
                retry_after: None,
            });
        }
        a.json().ok_or_else(|| unreadable("JSON", &a))
    }

    /// One job: create, add the operations (`create` or `remove`), run, poll. Returns one
    /// outcome per operation.
    fn job(&self, ops: &[Value], remove: bool) -> Vec<Outcome> {
        match self.try_job(ops, remove) {
            Ok(out) => out,
            Err(e) => ops.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn try_job(&self, ops: &[Value], remove: bool) -> Result<Vec<Outcome>, DeliveryError> {
        let cid = &self.config.customer_id;
        let mut meta = json!({"userList": format!("customers/{cid}/userLists/{}", self.config.user_list_id)});
        if !remove {
            // consent is required for additions, not for remove-only jobs
            meta["consent"] = json!({"adUserData": self.config.ad_user_data.as_str(),
                                     "adPersonalization": self.config.ad_personalization.as_str()});
        }
        let created = self.post(
            &format!("{}/customers/{cid}/offlineUserDataJobs:create", self.base),
            &json!({"job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": meta}}),
        )?;
        let job = created["resourceName"]
            .as_str()
            .filter(|r| r.starts_with(&format!("customers/{cid}/offlineUserDataJobs/")) && !r.contains(['?', '#', ' ']))
            .ok_or_else(|| {
                DeliveryError::external(format!(
                    "offlineUserDataJobs:create answered without a job resourceName: {}",
                    crate::error::excerpt(&created.to_string(), 200)
                ))
            })?
            .to_string();
        let mut out: Vec<Outcome> = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(MAX_OPERATIONS) {
            let operations: Vec<Value> = chunk
                .iter()
                .map(|ids| json!({if remove { "remove" } else { "create" }: {"userIdentifiers": ids}}))
                .collect();
            let body = json!({"enablePartialFailure": true, "operations": operations});
            match self.post(&format!("{}/{job}:addOperations", self.base), &body) {
                Ok(v) => out.extend(partial_failures(chunk.len(), &v)),
                Err(e) => out.extend(chunk.iter().map(|_| Err(e.clone()))),
            }
        }
        if out.iter().all(|o| o.is_err()) {
            return Ok(out);
        }
        self.post(&format!("{}/{job}:run", self.base), &json!({}))?;
        match self.poll(&job) {
            Ok(()) => Ok(out),
            Err(e) => Ok(out.into_iter().map(|o| o.and(Err(e.clone()))).collect()),
        }
    }

    /// Polls the job's status (bounded): `SUCCESS` is done, `FAILED` fails its records
    /// (retryable, with Google's `failureReason`); still `PENDING`/`RUNNING` after
    /// `max_polls`: the operations were taken and Google goes on processing them (logged).
    fn poll(&self, job: &str) -> Result<(), DeliveryError> {
        let cid = &self.config.customer_id;
        let url = format!("{}/customers/{cid}/googleAds:search", self.base);
        let query = format!(
            "SELECT offline_user_data_job.resource_name, offline_user_data_job.status, \
             offline_user_data_job.failure_reason FROM offline_user_data_job \
             WHERE offline_user_data_job.resource_name = '{job}'"
        );
        let mut wait = Duration::from_millis(self.config.poll_interval_ms);
        let mut status = String::new();
        for n in 0..self.config.max_polls {
            if n > 0 {
                std::thread::sleep(wait);
                wait = (wait * 2).min(MAX_POLL_WAIT);
            }
            let v = self.post(&url, &json!({"query": query}))?;
            let j = &v["results"][0]["offlineUserDataJob"];
            status = j["status"].as_str().unwrap_or_default().to_string();
            match status.as_str() {
                "SUCCESS" => return Ok(()),
                "FAILED" => {
                    return Err(DeliveryError::external(format!(
                        "Customer Match job {job} FAILED: {}",
                        j["failureReason"].as_str().unwrap_or("no failureReason given")
                    )))
                }
                "PENDING" | "RUNNING" => {}
                _ => {
                    return Err(DeliveryError::external(format!(
                        "googleAds:search answered without the job's status: {}",
                        crate::error::excerpt(&v.to_string(), 200)
                    )))
                }
            }
        }
        tracing::warn!(job, status = %status, polls = self.config.max_polls,
            "Customer Match job still processing after the last poll; its operations were taken");
        Ok(())
    }
}

/// One outcome per operation of an `addOperations` answer: `partialFailureError.details[]
/// .errors[]` each name their operation by `location.fieldPathElements[{fieldName:
/// "operations", index}]`.
fn partial_failures(n: usize, v: &Value) -> Vec<Outcome> {
    let pf = &v["partialFailureError"];
    if pf.is_null() || pf.as_object().is_some_and(|m| m.is_empty()) {
        return (0..n).map(|_| Ok(())).collect();
    }
    let mut failures = Vec::new();
    let mut located = false;
    for d in pf["details"].as_array().into_iter().flatten() {
        for e in d["errors"].as_array().into_iter().flatten() {
            let index = e["location"]["fieldPathElements"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["fieldName"] == "operations")
                .and_then(|p| p["index"].as_u64());
            let code = e["errorCode"]
                .as_object()
                .and_then(|m| m.iter().next())
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")));
            let reason = format!(
                "Google Ads: {}{}",
                code.map(|c| format!("{c}: ")).unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            );
            if let Some(i) = index {
                located = true;
                failures.push(RecordFailure::at(i as usize, reason));
            }
        }
    }
    if !located {
        // a partial failure Sluice cannot place: no record is reported taken
        let e = DeliveryError::external(format!(
            "Google Ads reported a partial failure without operation indexes: {}",
            crate::error::excerpt(&pf.to_string(), 200)
        ));
        return (0..n).map(|_| Err(e.clone())).collect();
    }
    outcomes(n, &[], failures)
}

impl Destination for GoogleAdsSink {
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        let mut out: Vec<Outcome> = items.iter().map(|_| Ok(())).collect();
        let (mut adds, mut removes) = (Vec::new(), Vec::new());
        for (i, item) in items.iter().enumerate() {
            match self.identifiers(item) {
                Ok(ids) if item.action == Change::Deleted => removes.push((i, Value::Array(ids))),
                Ok(ids) => adds.push((i, Value::Array(ids))),
                Err(e) => out[i] = Err(e),
            }
        }
        for (ops, remove) in [(adds, false), (removes, true)] {
            if ops.is_empty() {
                continue;
            }
            let values: Vec<Value> = ops.iter().map(|(_, v)| v.clone()).collect();
            for ((i, _), o) in ops.iter().zip(self.job(&values, remove)) {
                out[*i] = o;
            }
        }
        out
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(self.client.policy())
    }
}
