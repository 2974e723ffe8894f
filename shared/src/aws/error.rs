//! Mapping SDK errors onto [`PortError`]: throttling, 5xx, timeouts and connection
//! failures are transient; validation errors are invalid requests; access denied and any
//! other client error are permanent. Callers handle "not found" codes themselves first,
//! because only they know what was not found.

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::request_counter::THROTTLE_CODES;
use crate::ports::PortError;

const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMSInternalException",
    "KMSInvalidStateException",
    "TransactionConflictException",
    "ServiceFailure",
    "InternalServiceError",
    "KMS.InternalException",
    "AWS.SimpleQueueService.InternalError",
];

/// The error code AWS returned, if the request got that far.
pub(crate) fn code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<String> {
    err.code().map(str::to_string)
}

/// Whether the error code is one of `codes` (also matching `AWS.SimpleQueueService.<code>`
/// and `com.amazonaws...#<code>` spellings).
pub fn has_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>, codes: &[&str]) -> bool {
    match err.code() {
        Some(c) => {
            let short = c.rsplit(['.', '#']).next().unwrap_or(c);
            codes.iter().any(|k| *k == c || *k == short)
        }
        None => false,
    }
}

/// The HTTP status of the response, if there was one.
pub(crate) fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Classifies any SDK error for `op` (e.g. `"sqs:SendMessageBatch"`).
pub fn classify<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_string();
    let short = code.rsplit(['.', '#']).next().unwrap_or(&code).to_string();
    let status = status(&err);
    let detail = match err.message() {
        Some(m) if !code.is_empty() => format!("{code}: {m}"),
        Some(m) => m.to_string(),
        None if !code.is_empty() => format!("{code}: {}", DisplayErrorContext(&err)),
        None => DisplayErrorContext(&err).to_string(),
    };
    match &err {
        SdkError::ConstructionFailure(_) => PortError::Invalid {
            op,
            message: detail,
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            PortError::Transient {
                op,
                message: detail,
            }
        }
        _ => {
            let throttled =
                THROTTLE_CODES.contains(&short.as_str()) || THROTTLE_CODES.contains(&code.as_str());
            let server = status.is_some_and(|s| s >= 500 || s == 429)
                || TRANSIENT_CODES.contains(&short.as_str())
                || TRANSIENT_CODES.contains(&code.as_str());
            if throttled || server {
                PortError::Transient {
                    op,
                    message: detail,
                }
            } else if short.contains("AccessDenied")
                || short.contains("Unauthorized")
                || short == "InvalidClientTokenId"
                || short == "ExpiredToken"
                || short == "ExpiredTokenException"
                || short == "SignatureDoesNotMatch"
                || short == "UnrecognizedClientException"
                || status == Some(403)
            {
                PortError::Permanent {
                    op,
                    message: detail,
                }
            } else if short.starts_with("Invalid")
                || short.starts_with("Validation")
                || short.contains("Malformed")
                || short.contains("TooMany")
                || short.contains("BatchEntry")
                || short.contains("EmptyBatch")
                || short.contains("BatchRequest")
                || short.contains("TooLong")
                || short == "UnsupportedOperation"
                || short == "MissingParameter"
            {
                PortError::Invalid {
                    op,
                    message: detail,
                }
            } else {
                PortError::Permanent {
                    op,
                    message: detail,
                }
            }
        }
    }
}
