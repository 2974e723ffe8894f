//! Error types of the analysis engine. Every error names what it is about (principal,
//! policy) and where (a JSON path such as `$.RoleDetailList[3].RolePolicyList[0].PolicyDocument.Statement[1].Action`).

use serde::{Deserialize, Serialize};

/// A file (account authorization details, last-accessed data, report, SCP tree, resource
/// policies) could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ParseError {
    /// Not JSON at all (or not UTF-8).
    #[error("invalid JSON at line {line} column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    /// Valid JSON, but the structure is not what the format requires.
    #[error("{path}: {message}")]
    Structure { path: String, message: String },
}

impl ParseError {
    pub(crate) fn structure(path: impl Into<String>, message: impl Into<String>) -> Self {
        ParseError::Structure {
            path: path.into(),
            message: message.into(),
        }
    }
    pub(crate) fn from_json(e: &serde_json::Error) -> Self {
        ParseError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        }
    }
}

/// A policy document that is malformed. Recorded in the model; only the principals that use
/// the policy fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("policy {policy}: {path}: {message}")]
pub struct PolicyError {
    /// The policy's name or ARN, e.g. `inline policy "s3" of role/app` or a managed policy ARN.
    pub policy: String,
    /// JSON path of the offending element within the account file.
    pub path: String,
    pub message: String,
}

/// Evaluating one principal (or one request) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AnalysisError {
    #[error("principal {0} is not in the account file")]
    UnknownPrincipal(String),
    #[error("principal {principal}: malformed {error}")]
    MalformedPolicy {
        principal: String,
        error: PolicyError,
    },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// Rendering report files failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("rendering {file}: {message}")]
    Render { file: String, message: String },
    /// Storing a rendered file failed (the `store` of `AccountReport::write_files`).
    #[error("storing {file}: {message}")]
    Store { file: String, message: String },
}

impl ReportError {
    pub fn render(file: &str, e: impl std::fmt::Display) -> Self {
        ReportError::Render {
            file: file.to_string(),
            message: e.to_string(),
        }
    }

    /// Storing `file` failed: for the `store` of `AccountReport::write_files`.
    pub fn store(file: &str, e: impl std::fmt::Display) -> Self {
        ReportError::Store {
            file: file.to_string(),
            message: e.to_string(),
        }
    }
}
