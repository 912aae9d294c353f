//! The `audit.k8s.io/v1` `Event`, as one line of the audit log, and the HTTP status
//! Kubernetes would answer a request with, for its `responseStatus`.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::{Level, Stage};
use crate::auth::UserInfo;
use crate::error::Error;

pub const API_VERSION: &str = "audit.k8s.io/v1";
pub const KIND: &str = "Event";

/// A timestamp written as Kubernetes' `MicroTime`: RFC 3339 with six fractional digits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct MicroTime(pub Timestamp);

impl MicroTime {
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
        // Both parts are in range for any clock after 1970 and before the year 9999.
        let nanos = i32::try_from(since.subsec_nanos()).unwrap_or(0);
        MicroTime(Timestamp::new(secs, nanos).unwrap_or_default())
    }
}

impl Serialize for MicroTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:.6}", self.0))
    }
}

/// A user as events record it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UserRecord {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl From<&UserInfo> for UserRecord {
    fn from(u: &UserInfo) -> Self {
        UserRecord {
            username: u.name.clone(),
            uid: u.uid.clone(),
            groups: u.groups.clone(),
        }
    }
}

/// The object a request is about.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EmptyMeta {}

/// The outcome of a request, as the `Status` Kubernetes would answer with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResponseStatus {
    pub metadata: EmptyMeta,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub code: u16,
}

impl ResponseStatus {
    /// A success: 200, 201 for a create, 202 for a delete that has yet to finish.
    pub fn success(code: u16) -> Self {
        ResponseStatus {
            metadata: EmptyMeta {},
            status: None,
            message: None,
            reason: None,
            code,
        }
    }

    pub fn failure(e: &Error) -> Self {
        Self::failed(http_code(e), e.reason().to_string(), e.to_string())
    }

    /// A failure as the Status a REST response carried.
    pub fn failed(code: u16, reason: String, message: String) -> Self {
        ResponseStatus {
            metadata: EmptyMeta {},
            status: Some("Failure"),
            message: Some(message),
            reason: Some(reason),
            code,
        }
    }
}

/// The HTTP status kube-apiserver answers with for `e`.
pub fn http_code(e: &Error) -> u16 {
    match e {
        Error::NotFound { .. } | Error::UnknownKind { .. } => 404,
        Error::AlreadyExists { .. }
        | Error::Conflict { .. }
        | Error::FieldConflicts { .. }
        | Error::Precondition(_) => 409,
        Error::Invalid { .. } => 422,
        Error::BadRequest(_) => 400,
        Error::Expired { .. } => 410,
        Error::Forbidden(_) => 403,
        Error::Unauthorized(_) => 401,
        Error::TooLarge(_) => 413,
        Error::Unavailable(_) => 503,
        Error::Internal(_) => 500,
    }
}

/// One audit event.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub level: Level,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: Stage,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    pub user: UserRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserRecord>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    pub request_received_timestamp: MicroTime,
    pub stage_timestamp: MicroTime,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Event {
    /// The event of a request at `level`, before its first stage.
    pub fn new(level: Level, info: super::RequestInfo) -> Self {
        Event {
            kind: KIND,
            api_version: API_VERSION,
            level,
            audit_id: info.audit_id,
            stage: Stage::RequestReceived,
            request_uri: info.request_uri,
            verb: info.verb,
            user: info.user.as_ref().map(UserRecord::from).unwrap_or_default(),
            impersonated_user: info.impersonated.as_ref().map(UserRecord::from),
            source_ips: info.source_ips,
            user_agent: info.user_agent,
            object_ref: info.object_ref,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: info.received,
            stage_timestamp: info.received,
            annotations: BTreeMap::new(),
        }
    }
}
