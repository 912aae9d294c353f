//! `metav1.Status` as the streaming protocols use it: on the error channel at the end of
//! an exec or attach (success, a non-zero exit code, or what failed), and as the body of
//! a request refused before the upgrade.

use axum::response::Response;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

use crate::error::Error;

/// The reason and cause type Kubernetes gives a command's non-zero exit code.
pub const NON_ZERO_EXIT_CODE: &str = "NonZeroExitCode";
pub const EXIT_CODE_CAUSE: &str = "ExitCode";

fn status(s: Status) -> Vec<u8> {
    // A Status of strings and numbers always serializes.
    serde_json::to_vec(&s).unwrap_or_default()
}

pub fn success() -> Vec<u8> {
    status(Status {
        status: Some("Success".into()),
        ..Default::default()
    })
}

/// The command ran and exited with `code` (non-zero).
pub fn exit_code(command: &[String], code: i32) -> Vec<u8> {
    status(Status {
        status: Some("Failure".into()),
        message: Some(format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        )),
        reason: Some(NON_ZERO_EXIT_CODE.into()),
        details: Some(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some(EXIT_CODE_CAUSE.into()),
                message: Some(code.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The session failed: `what` says how (an internal error, as the kubelet reports it).
pub fn failure(what: &str) -> Vec<u8> {
    status(Status {
        status: Some("Failure".into()),
        message: Some(format!("Internal error occurred: {what}")),
        reason: Some("InternalError".into()),
        code: Some(500),
        details: Some(StatusDetails {
            causes: Some(vec![StatusCause {
                message: Some(what.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A request refused before the upgrade: its Status, as the REST API answers errors.
pub fn error_response(e: &Error) -> Response {
    crate::rest::error_response(e)
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::Value;

    use super::*;

    #[test]
    fn exit_codes_read_as_client_go_decodes_them() {
        let v: Value = serde_json::from_slice(&exit_code(&["sh".into(), "-c".into()], 3)).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        let ok: Value = serde_json::from_slice(&success()).unwrap();
        assert_eq!(ok["status"], "Success");
        let e = error_response(&Error::NotFound {
            resource: "pods".into(),
            name: "p".into(),
        });
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
    }
}
