//! `worker analyze` and `worker check`: the analysis engine on one file, without queues.
//!
//! The clap arguments live here, with the binary; the engine crate knows nothing of a CLI.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use accessflow_analysis::{
    build_report, parse_resource_policies, AccountModel, AccountReport, CheckInputs, Engine,
    PrincipalFailure, ReportContext, Scps,
};

/// Analyse one `get-account-authorization-details` file offline.
#[derive(Args, Debug, Clone)]
pub struct AnalyzeArgs {
    /// The account authorization details file (CLI JSON or API form).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The previous run's report.json, for diff.csv (its principal-access-summaries.csv
    /// is read from the same directory).
    #[arg(long, value_name = "FILE")]
    pub previous: Option<PathBuf>,
    /// Output directory for the report files.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// `iam get-credential-report` CSV (decoded).
    #[arg(long, value_name = "FILE")]
    pub credential_report: Option<PathBuf>,
    /// Directory of per-principal last-accessed JSON files named `<principal name>.json`.
    #[arg(long, value_name = "DIR")]
    pub last_accessed: Option<PathBuf>,
    /// Analysis time written into the report (RFC 3339); default: now.
    #[arg(long)]
    pub analysis_time: Option<String>,
    #[arg(long, default_value = "offline")]
    pub customer: String,
    /// Account id; default: from the file's ARNs.
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long, default_value = "offline")]
    pub run_id: String,
    /// Service control policies that apply to the account: an organization tree JSON or a
    /// single SCP document (repeatable).
    #[arg(long = "scp", value_name = "FILE")]
    pub scp: Vec<PathBuf>,
    /// Resource control policies of the organisation, in the same formats as `--scp`
    /// (repeatable): they limit access to the inventory's resources (`--resources`).
    #[arg(long = "rcp", value_name = "FILE")]
    pub rcp: Vec<PathBuf>,
    /// The account's resource inventory (`resources.json`: data stores with their resource
    /// policies), for `public-and-cross-account.csv`.
    #[arg(long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// A known partner account (repeatable): its access is marked trusted.
    #[arg(long = "trusted-account", value_name = "ACCOUNT")]
    pub trusted_accounts: Vec<String>,
}

/// One decision: may PRINCIPAL do ACTION on RESOURCE? Prints JSON.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[arg(long, value_name = "ARN")]
    pub principal: String,
    #[arg(long, value_name = "ACTION")]
    pub action: String,
    #[arg(long, value_name = "ARN")]
    pub resource: String,
    /// Request context, e.g. `aws:SourceIp=10.0.0.1` (repeatable; a key given twice has
    /// two values). With any context given, absent keys are absent from the request.
    #[arg(long = "context", value_name = "KEY=VALUE")]
    pub context: Vec<String>,
    /// Service control policies: an organization tree JSON or a single SCP document (repeatable).
    #[arg(long = "scp", value_name = "FILE")]
    pub scp: Vec<PathBuf>,
    /// Resource control policies: an organization tree JSON or a single RCP document
    /// (repeatable); they apply to the resource's account.
    #[arg(long = "rcp", value_name = "FILE")]
    pub rcp: Vec<PathBuf>,
    /// Resource policies: `[{"Resource": ARN, "Policy": {...}, "Account": "..."}]`, or an
    /// account's resource inventory (`resources.json`) (repeatable).
    #[arg(long = "resource-policies", value_name = "FILE")]
    pub resource_policies: Vec<PathBuf>,
}

/// The organisation's SCPs or RCPs (`what`) from `files`: each an organization tree or
/// one policy document.
fn org_policies(files: &[PathBuf], what: &str) -> anyhow::Result<Vec<Scps>> {
    files
        .iter()
        .map(|f| {
            let b = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            Scps::parse(&b).with_context(|| format!("parsing {what} {}", f.display()))
        })
        .collect()
}

fn now_rfc3339() -> String {
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
    );
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000+00:00".into())
}

/// The report `--previous` names: its `report.json` and, beside it, the access rows'
/// CSV (`ACCESS_FILE`) that a format-3 report keeps there (older formats do not need it).
fn previous_report(json_path: &std::path::Path) -> anyhow::Result<AccountReport> {
    let json =
        std::fs::read(json_path).with_context(|| format!("reading {}", json_path.display()))?;
    let csv_path = json_path.with_file_name(accessflow_analysis::ACCESS_FILE);
    let csv = match std::fs::read(&csv_path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", csv_path.display())),
    };
    AccountReport::from_files(&json, csv.as_deref()).with_context(|| {
        format!(
            "parsing {} (with {} beside it)",
            json_path.display(),
            csv_path.display()
        )
    })
}

pub fn run_analyze(args: &AnalyzeArgs) -> anyhow::Result<()> {
    // before any work: a wrong combination is told at once
    if !args.rcp.is_empty() && args.resources.is_none() {
        anyhow::bail!("--rcp needs --resources: RCPs limit access to the inventory's resources");
    }
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let model = AccountModel::parse(&bytes)
        .with_context(|| format!("parsing {}", args.file.display()))?
        .with_scps(org_policies(&args.scp, "SCPs")?);
    let engine = Engine::new().context("the analysis engine cannot start")?;
    let previous = match &args.previous {
        Some(p) => Some(previous_report(p)?),
        None => None,
    };
    let creds = match &args.credential_report {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for p in model.principals() {
        let la = match &args.last_accessed {
            Some(dir) => {
                let f = dir.join(format!("{}.json", p.name));
                if f.exists() {
                    match accessflow_analysis::LastAccessed::parse(&std::fs::read(&f)?) {
                        Ok(l) => Some(l),
                        Err(e) => {
                            failures.push(PrincipalFailure {
                                principal_arn: p.arn.clone(),
                                reason: format!("last-accessed data {}: {e}", f.display()),
                            });
                            continue;
                        }
                    }
                } else {
                    None
                }
            }
            None => None,
        };
        match engine.analyze_principal(&model, &p.arn, la.as_ref()) {
            Ok(r) => results.push(r),
            Err(e) => failures.push(PrincipalFailure {
                principal_arn: p.arn.clone(),
                reason: e.to_string(),
            }),
        }
    }
    let analysis_time = args.analysis_time.clone().unwrap_or_else(now_rfc3339);
    let account = args
        .account
        .clone()
        .unwrap_or_else(|| model.account_id().to_string());
    let inventory = match &args.resources {
        Some(f) => {
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            Some(
                accessflow_analysis::resources::ResourceInventory::parse(&bytes)
                    .with_context(|| format!("resource inventory {}", f.display()))?
                    .with_rcps(org_policies(&args.rcp, "RCPs")?),
            )
        }
        None => None,
    };
    let ctx = ReportContext {
        customer: &args.customer,
        account: &account,
        run_id: &args.run_id,
        analysis_time: &analysis_time,
        credential_report: creds.as_deref(),
        resources: inventory.as_ref(),
        trusted_accounts: &args.trusted_accounts,
    };
    let report = build_report(
        &engine,
        &model,
        &results,
        &failures,
        &ctx,
        previous.as_ref(),
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    drop(previous);
    // One file at a time, straight to disk.
    for name in accessflow_analysis::REPORT_FILES {
        let path = args.out.join(name);
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        report
            .write_file(name, &mut out)
            .with_context(|| format!("writing {}", path.display()))?;
        std::io::Write::flush(&mut out).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "analysed {} principals ({} failed): {} admins, {} externally assumable roles; report in {}",
        report.principal_count,
        report.failures.len(),
        report.admins.len(),
        report.totals.externally_assumable_roles,
        args.out.display()
    );
    Ok(())
}

pub fn run_check(args: &CheckArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let model =
        AccountModel::parse(&bytes).with_context(|| format!("parsing {}", args.file.display()))?;
    let mut inputs = CheckInputs {
        scps: org_policies(&args.scp, "SCPs")?,
        rcps: org_policies(&args.rcp, "RCPs")?,
        ..CheckInputs::default()
    };
    for f in &args.resource_policies {
        let b = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        inputs.resource_policies.extend(
            parse_resource_policies(&b)
                .with_context(|| format!("parsing resource policies {}", f.display()))?,
        );
    }
    let mut context = Vec::new();
    for kv in &args.context {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--context {kv:?} is not KEY=VALUE"))?;
        context.push((k.trim().to_string(), v.to_string()));
    }
    let engine = Engine::new().context("the analysis engine cannot start")?;
    let r = engine.check(
        &model,
        &args.principal,
        &args.action,
        &args.resource,
        &context,
        &inputs,
    )?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}
