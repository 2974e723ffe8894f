//! Least privilege, proven: the IAM policies of the Terraform roles allow every AWS
//! operation the binaries call, and grant nothing that nothing calls.
//!
//! 1. **What is called.** A night on moto with the real binaries, every AWS request counted
//!    by the programs themselves (`--request-report`): the coordinator's commands
//!    (reconcile, start, status, the DLQ commands on a really dead-lettered account, index,
//!    gc, a reconcile that removes an account), the workers, and `coordinator exporter` (its own
//!    read-only role). The workers' IAM reads and resource inventory are made with the
//!    customer role's credentials (the request report counts them apart), so they belong
//!    to the customer audit role; the customer account holds one data store of each kind.
//! 2. **What is granted.** `deploy/checks/render_policies.py` renders each role's policy
//!    documents from the Terraform files, parsed with python-hcl2 (no provider, no
//!    `terraform plan`), into authorization-details files.
//! 3. **Decided by our own engine.** `worker check` decides every (action, resource) the
//!    binaries need against the rendered role; every action a role grants must be needed
//!    (called, or listed below with the reason it cannot be seen on moto); and a `*`
//!    resource is only accepted for actions that have no resource type in the AWS catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use accessflow_shared::ports::OutgoingMessage;
use accessflow_testkit::python_venv::{self, VenvSpec};
use accessflow_testkit::{data_stores, moto, seed};
use accessflow_tests::aws::{provisioned, AwsDeployment};
use accessflow_tests::{binary, repo_root, terminate};
use serde_json::{json, Value};

/// Operations that need no IAM permission at all.
const NEEDS_NO_PERMISSION: &[(&str, &str)] = &[(
    "sts:GetCallerIdentity",
    "AWS: no permission is required to call GetCallerIdentity",
)];

/// Operations the binaries make that a night on moto cannot show, with why. Each must still
/// appear in the AWS backend's source, so this list cannot outlive the code.
const NOT_OBSERVED_ON_MOTO: &[(&str, &str, &str)] = &[
    (
        "worker",
        "iam:GenerateServiceLastAccessedDetails",
        "the last-accessed jobs are off against moto (ACCESSFLOW_IAM_LAST_ACCESSED=off: moto answers them with HTTP 500)",
    ),
    (
        "worker",
        "iam:GetServiceLastAccessedDetails",
        "the last-accessed jobs are off against moto (see above)",
    ),
    (
        "worker",
        "sqs:ChangeMessageVisibilityBatch",
        "the heartbeat (every visibility/3, 1 s here: `worker/src/lease.rs`) and the release of unstarted messages on shutdown: since batches stopped writing each last-accessed entry on its own, no step of this night outlasts a second on moto, so whether one is seen depends on timing",
    ),
    (
        "coordinator",
        "kms:ScheduleKeyDeletion",
        "only when two reconciles race to create a customer's key: the loser retires its spare key",
    ),
];

/// IAM actions a role needs that are not API calls of the binaries, with why.
const NEEDED_BESIDES_CALLS: &[(&str, &str, &str)] = &[
    (
        "worker",
        "s3:ListBucket",
        "without it S3 answers a read of a missing key (a cache miss) with 403 instead of 404",
    ),
    (
        "coordinator",
        "sqs:TagQueue",
        "reconcile creates queues with tags, which SQS authorizes as TagQueue too",
    ),
    (
        "coordinator",
        "kms:TagResource",
        "reconcile creates each customer's key with tags, which KMS authorizes as TagResource",
    ),
    (
        "coordinator",
        "kms:GenerateDataKey",
        "the morning review is written to S3 with SSE-KMS under the customer's key: S3 asks KMS for a data key with the caller's rights",
    ),
    (
        "coordinator",
        "kms:Decrypt",
        "the summaries and earlier indexes the morning review reads are SSE-KMS objects: S3 decrypts their data key with the caller's rights",
    ),
    (
        "worker",
        "ecs:UpdateTaskProtection",
        "scale-in protection through the ECS agent's endpoint, which calls ECS with the task role",
    ),
    (
        "worker",
        "ecs:GetTaskProtection",
        "the ECS agent's task-protection endpoint reads the protection with the task role",
    ),
];

/// The operations (`service:Operation`) in the request reports `paths`.
fn operations_in(paths: &[PathBuf]) -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for path in paths {
        ops.extend(counts_in(path, "operations").into_keys());
    }
    ops
}

/// The request counts of one section (`operations`, `customer_role_operations`) of a
/// request report.
fn counts_in(path: &Path, section: &str) -> BTreeMap<String, u64> {
    let report: Value = serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    report[section]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(op, n)| (op.clone(), n.as_u64().unwrap_or(0)))
        .collect()
}

/// A coordinator command of `d`, its AWS requests counted into a new report in `reports`.
fn coordinator(d: &AwsDeployment, reports: &mut Vec<PathBuf>, args: &[&str]) -> Value {
    let report = d
        .dir
        .path()
        .join(format!("coordinator-requests-{}.json", reports.len()));
    let out = d
        .command("coordinator")
        .args(args)
        .arg("--request-report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "coordinator {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    reports.push(report);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// What the binaries call in a night on moto, by role.
struct Observed {
    coordinator: BTreeSet<String>,
    /// The worker's own requests (with its task role).
    worker: BTreeSet<String>,
    /// The worker's requests with the customer role's credentials (the IAM reads and the
    /// resource inventory).
    customer: BTreeSet<String>,
    /// `coordinator exporter`, which runs under a role of its own.
    exporter: BTreeSet<String>,
}

fn observe_a_night() -> Observed {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let good = moto::unique_account();
    let broken = moto::unique_account();
    runtime.block_on(async {
        seed::seed_fixture(&good, "iam_source_account.json")
            .await
            .expect("seed the account");
        // One data store of each kind: the inventory makes every one of its requests.
        data_stores::seed_data_stores(&good, "lp")
            .await
            .expect("seed the data stores");
        seed::seed_fixture(&broken, "iam_source_account.json")
            .await
            .expect("seed the account");
    });
    let entry = |account: &str, external_id: &str| {
        format!("[[customers.accounts]]\nid = \"{account}\"\nrole_arn = \"arn:aws:iam::{account}:role/accessflow-reader\"\nexternal_id = \"{external_id}\"\n")
    };
    let tenants_text = format!(
        "[[customers]]\nid = \"acme\"\n{}{}",
        entry(&good, "acme-external-id"),
        entry(&broken, "acme-external-id")
    );
    let (mut d, backend, tenants) = provisioned(&runtime, "leastpriv", &tenants_text);
    d.max_receive_count = 2;
    let tenants = tenants.to_str().unwrap().to_string();
    let mut reports = Vec::new();
    let run = "least-privilege";
    coordinator(&d, &mut reports, &["reconcile", "--tenants", &tenants]);
    coordinator(
        &d,
        &mut reports,
        &[
            "start",
            "--tenants",
            &tenants,
            "--run-id",
            run,
            "--as-of",
            "2026-11-26T02:00:00Z",
        ],
    );
    // Two garbage messages in the second account's queue: the worker dead-letters them, so
    // the DLQ commands work on real messages.
    let names = accessflow_shared::naming::Names::new(&d.name_prefix).unwrap();
    runtime.block_on(async {
        let garbage = [
            OutgoingMessage::new(&broken, "garbage-1", "{this is not json"),
            OutgoingMessage::new(&broken, "garbage-2", "{nor is this"),
        ];
        backend
            .ports()
            .queues
            .send_batch(&names.account_queue("acme", &broken), &garbage)
            .await
            .unwrap();
    });
    let mut worker = d.worker(0);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = coordinator(&d, &mut reports, &["status", "--run", run, "--json"]);
        let finished = status["totals"]["accounts_finished"] == status["totals"]["accounts"];
        if finished && status["totals"]["dead_lettered"].as_u64().unwrap_or(0) >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the night did not finish: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    coordinator(&d, &mut reports, &["dlq", "list"]);
    coordinator(&d, &mut reports, &["dlq", "show"]);
    // One of the two: the other is looked at and released at once.
    coordinator(
        &d,
        &mut reports,
        &["dlq", "replay", "--account", &broken, "--limit", "1"],
    );
    // The replayed message fails again and is dead-lettered again; then both are purged.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = coordinator(&d, &mut reports, &["status", "--run", run, "--json"]);
        if status["totals"]["dead_lettered"].as_u64().unwrap_or(0) >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replay was not dead-lettered again: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    coordinator(
        &d,
        &mut reports,
        &["dlq", "purge", "--account", &broken, "--yes"],
    );
    // A second night two days later (unchanged accounts: the caches are read), published
    // through the topics; then gc deletes the first night.
    let second = "least-privilege-2";
    coordinator(
        &d,
        &mut reports,
        &[
            "start",
            "--tenants",
            &tenants,
            "--run-id",
            second,
            "--as-of",
            "2026-11-28T02:00:00Z",
            // The subscriptions are old enough now: publish through the topics.
            "--filter-propagation-secs",
            "0",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = coordinator(&d, &mut reports, &["status", "--run", second, "--json"]);
        if status["totals"]["accounts_finished"] == status["totals"]["accounts"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second night did not finish: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The customers' morning review of the second night (what `start --wait` builds when
    // its run ends): summaries and the first night's files read, the index written.
    coordinator(&d, &mut reports, &["index", "--run", second]);
    assert!(terminate(&mut worker, Duration::from_secs(60)).success());
    // The exporter, over the finished night and its non-empty DLQ: a few refreshes.
    let exporter_report = d.dir.path().join("exporter-requests.json");
    let mut exporter = d
        .command("coordinator")
        .arg("--request-report")
        .arg(&exporter_report)
        .args([
            "exporter",
            "--metrics-addr",
            "127.0.0.1:0",
            "--refresh-secs",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(terminate(&mut exporter, Duration::from_secs(30)).success());
    let gc = d
        .command("coordinator")
        .args(["gc", "--keep-days", "1", "--request-report"])
        .arg(d.dir.path().join("coordinator-requests-gc.json"))
        .output()
        .unwrap();
    let gc_out = String::from_utf8_lossy(&gc.stdout);
    assert!(
        gc.status.success() && gc_out.contains("deleted 1 run"),
        "gc: {gc_out}"
    );
    reports.push(d.dir.path().join("coordinator-requests-gc.json"));
    // A reconcile that removes a customer: its queues, subscriptions, DLQs and topic go.
    let other = d.dir.path().join("other.toml");
    std::fs::write(
        &other,
        format!(
            "[[customers]]\nid = \"globex\"\n{}",
            entry(&moto::unique_account(), "globex-external-id")
        ),
    )
    .unwrap();
    coordinator(
        &d,
        &mut reports,
        &["reconcile", "--tenants", other.to_str().unwrap()],
    );

    // The worker's requests, split by the credentials they were made with.
    let worker_report = d.dir.path().join("requests-0.json");
    let all = counts_in(&worker_report, "operations");
    let customer = counts_in(&worker_report, "customer_role_operations");
    Observed {
        coordinator: operations_in(&reports),
        worker: all
            .iter()
            .filter(|(op, n)| **n > customer.get(*op).copied().unwrap_or(0))
            .map(|(op, _)| op.clone())
            .collect(),
        customer: customer.into_keys().collect(),
        exporter: operations_in(&[exporter_report]),
    }
}

/// The IAM actions that authorize an SDK operation.
fn iam_actions(operation: &str) -> Vec<String> {
    let (service, op) = operation.split_once(':').expect("service:Operation");
    let action = match (service, op) {
        // A transaction is authorized item by item; the product's transactions hold
        // updates and deletes (the port's `WriteOp::Check` has no caller).
        ("dynamodb", "TransactWriteItems") => {
            return vec!["dynamodb:UpdateItem".into(), "dynamodb:DeleteItem".into()]
        }
        // Batch APIs are authorized by their single-message action.
        ("sqs", "SendMessageBatch") => "SendMessage",
        ("sqs", "DeleteMessageBatch") => "DeleteMessage",
        ("sqs", "ChangeMessageVisibilityBatch") => "ChangeMessageVisibility",
        ("sns", "PublishBatch") => "Publish",
        // S3: a HEAD is a GetObject, a listing is ListBucket, a multi-delete DeleteObject.
        ("s3", "HeadObject") => "GetObject",
        // The resource inventory's S3 reads, and the account's Block Public Access (an
        // S3 Control operation with an `s3:` action).
        ("s3", "ListBuckets") => "ListAllMyBuckets",
        ("s3", "GetPublicAccessBlock") => "GetBucketPublicAccessBlock",
        ("s3control", "GetPublicAccessBlock") => {
            return vec!["s3:GetAccountPublicAccessBlock".into()]
        }
        ("s3", "ListObjectsV2") | ("s3", "ListObjects") => "ListBucket",
        ("s3", "DeleteObjects") => "DeleteObject",
        _ => op,
    };
    vec![format!("{service}:{action}")]
}

/// The AWS action catalog the engine uses: action → its resource types (lowercase).
fn catalog_resource_types() -> BTreeMap<String, Vec<String>> {
    use std::io::Read;
    let gz = std::fs::read(repo_root().join("analysis/data/catalog.tsv.gz")).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.first() == Some(&"A") && cols.len() >= 3 {
            let types = cols
                .get(5)
                .map(|t| {
                    t.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            out.insert(
                format!("{}:{}", cols[1], cols[2]).to_ascii_lowercase(),
                types,
            );
        }
    }
    out
}

/// The rendered Terraform: the example values and one authorization-details file per role.
struct Rendered {
    dir: PathBuf,
    values: Value,
}

/// The Terraform rendered once per test process (both tests read it).
fn render() -> &'static Rendered {
    static RENDERED: std::sync::OnceLock<Rendered> = std::sync::OnceLock::new();
    RENDERED.get_or_init(render_now)
}

fn render_now() -> Rendered {
    let root = repo_root();
    let requirements = root.join("deploy/checks/requirements.txt");
    let spec = VenvSpec {
        dir: python_venv::target_dir().join("deploy-venv"),
        install: &["-r", requirements.to_str().unwrap()],
        probe: "import hcl2",
    };
    let python = python_venv::ensure(&spec).unwrap_or_else(|e| panic!("{e}"));
    // Under target/ (a static is never dropped, so a temporary directory would be left).
    let dir = python_venv::target_dir().join("least-privilege-rendered");
    let out = Command::new(python)
        .arg(root.join("deploy/checks/render_policies.py"))
        .arg("--out")
        .arg(&dir)
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "render_policies.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values: Value =
        serde_json::from_slice(&std::fs::read(dir.join("values.json")).unwrap()).unwrap();
    Rendered { dir, values }
}

/// One request a binary makes: its resource, the request context AWS would send with it,
/// and the resource's own policy where AWS evaluates one (a customer role's trust policy).
struct Request {
    resource: String,
    context: Vec<String>,
    resource_policy: Option<Value>,
}

impl Request {
    fn on(resource: impl Into<String>) -> Request {
        Request {
            resource: resource.into(),
            context: Vec::new(),
            resource_policy: None,
        }
    }

    fn with(mut self, key_value: String) -> Request {
        self.context.push(key_value);
        self
    }
}

/// `worker check` of one request against a rendered role.
fn allowed(file: &Path, principal: &str, action: &str, request: &Request) -> Value {
    let mut cmd = Command::new(binary("worker"));
    cmd.arg("check").arg(file).args([
        "--principal",
        principal,
        "--action",
        action,
        "--resource",
        &request.resource,
    ]);
    for kv in &request.context {
        cmd.args(["--context", kv]);
    }
    let policies = tempfile::NamedTempFile::new().unwrap();
    if let Some(policy) = &request.resource_policy {
        std::fs::write(policies.path(), serde_json::to_vec(policy).unwrap()).unwrap();
        cmd.arg("--resource-policies").arg(policies.path());
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "worker check {action} {}: {}",
        request.resource,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The statements of a rendered role (its inline and attached policies), as JSON values.
fn statements(details: &Value) -> Vec<Value> {
    let role = &details["RoleDetailList"][0];
    let mut docs: Vec<Value> = role["RolePolicyList"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["PolicyDocument"].clone())
        .collect();
    for policy in details["Policies"].as_array().into_iter().flatten() {
        for version in policy["PolicyVersionList"].as_array().into_iter().flatten() {
            if version["IsDefaultVersion"] == true {
                docs.push(version["Document"].clone());
            }
        }
    }
    let mut out = Vec::new();
    for doc in docs {
        let doc = match doc {
            Value::String(text) => serde_json::from_str(&text).unwrap(),
            other => other,
        };
        match &doc["Statement"] {
            Value::Array(list) => out.extend(list.iter().cloned()),
            one @ Value::Object(_) => out.push(one.clone()),
            _ => {}
        }
    }
    out
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(list) => list
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// `pattern` (IAM action glob, `*` and `?`) matches `action`, case-insensitively.
fn glob(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], a) || (!a.is_empty() && go(p, &a[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => go(&p[1..], &a[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

/// One role to prove: its rendered file and the IAM actions it needs, with a resource (and
/// request context) for each.
struct RoleUnderTest {
    name: &'static str,
    file: PathBuf,
    needed: BTreeMap<String, Vec<Request>>,
}

/// Checks one role; returns the problems found.
fn prove(role: &RoleUnderTest, catalog: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let details: Value = serde_json::from_slice(&std::fs::read(&role.file).unwrap()).unwrap();
    let principal = details["RoleDetailList"][0]["Arn"]
        .as_str()
        .expect("a rendered role has an Arn")
        .to_string();
    let mut problems = Vec::new();
    // Every needed request is allowed, unconditionally, by the role's policies.
    for (action, requests) in &role.needed {
        for request in requests {
            let r = allowed(&role.file, &principal, action, request);
            if r["decision"] != "Allowed" || r["conditional"] == true {
                problems.push(format!(
                    "{}: {action} on {} is not allowed: {}",
                    role.name, request.resource, r
                ));
            }
        }
    }
    // Every granted action is needed, and `*` resources only where AWS has no narrower form.
    for statement in statements(&details) {
        if statement["Effect"] != "Allow" {
            continue;
        }
        let resources = strings(&statement["Resource"]);
        for pattern in strings(&statement["Action"]) {
            let granted: Vec<&String> = catalog.keys().filter(|a| glob(&pattern, a)).collect();
            if granted.is_empty() {
                problems.push(format!("{}: {pattern} matches no AWS action", role.name));
            }
            for action in granted {
                if !role.needed.keys().any(|n| n.eq_ignore_ascii_case(action)) {
                    problems.push(format!(
                        "{}: grants {action} (from {pattern}), which nothing calls",
                        role.name
                    ));
                }
                let has_types = catalog.get(action).is_some_and(|t| !t.is_empty());
                if has_types && resources.iter().any(|r| r == "*") {
                    problems.push(format!(
                        "{}: grants {action} on \"*\" although it has resource types {:?}",
                        role.name, catalog[action]
                    ));
                }
            }
        }
    }
    problems
}

/// The values the renderer used, by name (a missing one is a renderer bug).
fn value<'a>(values: &'a Value, name: &str) -> &'a str {
    values[name]
        .as_str()
        .unwrap_or_else(|| panic!("values.json has no string {name:?}: {values:#}"))
}

/// A resource (and the request context AWS would send) for each request of `action` that
/// role `who`'s binary makes, in the deployment the example values describe.
fn requests_of(
    who: &str,
    action: &str,
    values: &Value,
    catalog: &BTreeMap<String, Vec<String>>,
    customer_trust_policy: Value,
) -> Vec<Request> {
    let types = catalog
        .get(&action.to_ascii_lowercase())
        .unwrap_or_else(|| panic!("{action} is not in the AWS action catalog"));
    if types.is_empty() {
        return vec![Request::on("*")];
    }
    let region = value(values, "region");
    let account = value(values, "account_id");
    let prefix = value(values, "name_prefix");
    let customer_account = value(values, "customer_account_id");
    let (service, op) = action.split_once(':').unwrap();
    let queue = format!("arn:aws:sqs:{region}:{account}:{prefix}-q-acme-{customer_account}.fifo");
    let dlq = format!("arn:aws:sqs:{region}:{account}:{prefix}-q-acme-{customer_account}-dlq.fifo");
    let key = format!("arn:aws:kms:{region}:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    let alias = format!(
        "alias/{}acme",
        value(values, "kms_alias_prefix").trim_start_matches("alias/")
    );
    let bucket = value(values, "bucket");
    let plain = Request::on;
    if who == "customer" && service != "iam" {
        // The resource inventory reads the customer's own data stores, in any region.
        let at = |kind: &str| format!("arn:aws:{service}:{region}:{customer_account}:{kind}");
        return vec![plain(match service {
            "s3" => "arn:aws:s3:::customer-data".to_string(),
            "kms" => at("key/1234abcd-12ab-34cd-56ef-1234567890ab"),
            "sqs" => at("inbox"),
            "sns" => at("alerts"),
            "secretsmanager" => at("secret:db-password-AbCdEf"),
            "lambda" => at("function:thumbnailer"),
            "ecr" => at("repository/images"),
            "dynamodb" => at("table/orders"),
            other => panic!("no customer resource rule for {other} ({action})"),
        })];
    }
    match service {
        "sqs" => vec![plain(queue), plain(dlq)],
        "sns" => vec![plain(format!(
            "arn:aws:sns:{region}:{account}:{prefix}-t-acme-0.fifo"
        ))],
        "dynamodb" => vec![plain(format!(
            "arn:aws:dynamodb:{region}:{account}:table/{}",
            value(values, "table")
        ))],
        "s3" if op == "ListBucket" => vec![plain(format!("arn:aws:s3:::{bucket}"))],
        // The coordinator reads and writes only the morning review's files of a run (its
        // reports are the worker's); gc deletes anything.
        "s3" if who == "coordinator" && (op == "GetObject" || op == "PutObject") => {
            let files: &[&str] = if op == "GetObject" {
                &["summary.json", "index.json", "trend-point.json"]
            } else {
                &[
                    "index.json",
                    "index.html",
                    "digest.txt",
                    "digest.html",
                    "trend-point.json",
                ]
            };
            files
                .iter()
                .map(|f| {
                    let dir = if *f == "summary.json" {
                        format!("acme/reports/night/{customer_account}")
                    } else {
                        "acme/reports/night".to_string()
                    };
                    plain(format!("arn:aws:s3:::{bucket}/{dir}/{f}"))
                })
                .collect()
        }
        "s3" => vec![
            plain(format!(
                "arn:aws:s3:::{bucket}/acme/reports/night/{customer_account}/report.json"
            )),
            plain(format!("arn:aws:s3:::{bucket}/acme/snapshots/0123abcd")),
        ],
        // A customer's key, reached through its alias; a new key (before its alias exists)
        // is known by the `customer` tag reconcile creates it with.
        "kms" => vec![Request::on(key)
            .with(format!("kms:ResourceAliases={alias}"))
            .with(format!("kms:RequestAlias={alias}"))
            .with("aws:ResourceTag/customer=acme".to_string())]
        .into_iter()
        .chain(
            (op == "CreateAlias").then(|| plain(format!("arn:aws:kms:{region}:{account}:{alias}"))),
        )
        .collect(),
        // Into a customer's account: their role's trust policy is evaluated as well, with
        // the ExternalId the tenants file gives.
        "sts" => vec![Request {
            resource: value(values, "customer_role_arn").to_string(),
            context: vec![format!(
                "sts:ExternalId={}",
                value(values, "customer_external_id")
            )],
            resource_policy: Some(customer_trust_policy),
        }],
        "iam" => vec![plain(format!(
            "arn:aws:iam::{customer_account}:role/service-01"
        ))],
        "ecs" => vec![plain(format!(
            "arn:aws:ecs:{region}:{account}:task/{}/0123456789abcdef",
            value(values, "cluster")
        ))],
        other => panic!("no resource rule for {other} ({action})"),
    }
}

#[test]
fn terraform_roles_allow_exactly_what_the_binaries_call() {
    let Observed {
        coordinator: coordinator_ops,
        worker: worker_ops,
        customer: customer_ops,
        exporter: exporter_ops,
    } = observe_a_night();
    eprintln!("coordinator calls: {coordinator_ops:?}");
    eprintln!("worker calls: {worker_ops:?}");
    eprintln!("worker calls as the customer role: {customer_ops:?}");
    for op in [
        "s3:GetBucketPolicy",
        "lambda:GetPolicy",
        "dynamodb:GetResourcePolicy",
    ] {
        assert!(
            customer_ops.contains(op),
            "the night must have collected the resource inventory ({op}): {customer_ops:?}"
        );
    }
    eprintln!("exporter calls: {exporter_ops:?}");
    assert!(
        exporter_ops.contains("sqs:GetQueueAttributes") && exporter_ops.contains("dynamodb:Query"),
        "the exporter must have been observed: {exporter_ops:?}"
    );
    assert!(
        coordinator_ops.contains("sns:PublishBatch") && worker_ops.contains("sqs:ReceiveMessage"),
        "the night must have been observed"
    );

    // Every operation listed as unobservable on moto is still in the backend's code.
    let source: String = std::fs::read_dir(repo_root().join("shared/src/aws"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    for (_, op, why) in NOT_OBSERVED_ON_MOTO {
        let (_, name) = op.split_once(':').unwrap();
        let mut method = String::new();
        for c in name.chars() {
            if c.is_ascii_uppercase() && !method.is_empty() {
                method.push('_');
            }
            method.push(c.to_ascii_lowercase());
        }
        assert!(
            source.contains(&format!("\"{op}\"")) || source.contains(&format!(".{method}()")),
            "{op} is listed as called but not seen on moto ({why}), yet the AWS backend never names it"
        );
    }

    let rendered = render();
    let catalog = catalog_resource_types();
    let free: BTreeSet<&str> = NEEDS_NO_PERMISSION.iter().map(|(op, _)| *op).collect();
    let mut worker = BTreeSet::new();
    let mut customer = BTreeSet::new();
    for op in worker_ops.iter().filter(|op| !free.contains(op.as_str())) {
        worker.extend(iam_actions(op));
    }
    for op in customer_ops.iter().filter(|op| !free.contains(op.as_str())) {
        customer.extend(iam_actions(op));
    }
    let mut coordinator: BTreeSet<String> = coordinator_ops
        .iter()
        .filter(|op| !free.contains(op.as_str()))
        .flat_map(|op| iam_actions(op))
        .collect();
    for (who, op, _) in NOT_OBSERVED_ON_MOTO.iter().chain(NEEDED_BESIDES_CALLS) {
        let set = match *who {
            "worker" if op.starts_with("iam:") => &mut customer,
            "worker" => &mut worker,
            "coordinator" => &mut coordinator,
            _ => panic!("unknown role {who}"),
        };
        set.extend(iam_actions(op));
    }
    let exporter: BTreeSet<String> = exporter_ops
        .iter()
        .filter(|op| !free.contains(op.as_str()))
        .flat_map(|op| iam_actions(op))
        .collect();
    let customer_details: Value =
        serde_json::from_slice(&std::fs::read(rendered.dir.join("customer_audit.json")).unwrap())
            .unwrap();
    let customer_role = &customer_details["RoleDetailList"][0];
    let trust = json!([{
        "Resource": customer_role["Arn"],
        "Account": value(&rendered.values, "customer_account_id"),
        "Policy": customer_role["AssumeRolePolicyDocument"],
    }]);
    let needed = |who: &str, actions: &BTreeSet<String>| {
        actions
            .iter()
            .map(|a| {
                (
                    a.clone(),
                    requests_of(who, a, &rendered.values, &catalog, trust.clone()),
                )
            })
            .collect()
    };
    let roles = [
        RoleUnderTest {
            name: "worker task role",
            file: rendered.dir.join("worker.json"),
            needed: needed("worker", &worker),
        },
        RoleUnderTest {
            name: "coordinator task role",
            file: rendered.dir.join("coordinator.json"),
            needed: needed("coordinator", &coordinator),
        },
        RoleUnderTest {
            name: "exporter task role",
            file: rendered.dir.join("exporter.json"),
            needed: needed("exporter", &exporter),
        },
        RoleUnderTest {
            name: "customer audit role",
            file: rendered.dir.join("customer_audit.json"),
            needed: needed("customer", &customer),
        },
    ];
    let mut problems = Vec::new();
    for role in &roles {
        problems.extend(prove(role, &catalog));
    }
    assert!(
        problems.is_empty(),
        "the Terraform roles are not least privilege:\n{}",
        problems.join("\n")
    );
}

/// The `[env: NAME=...]` variables a binary's `--help` (of `subcommand`) names.
fn env_names_in_help(binary_name: &str, subcommand: &[&str]) -> BTreeSet<String> {
    let out = Command::new(binary(binary_name))
        .args(subcommand)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_string)
        .collect()
}

/// Item 3 of the deploy issue: the task definitions' environment is made of the binaries'
/// own settings — a misspelt or stale variable in Terraform would be silently ignored.
#[test]
fn the_task_definitions_set_only_variables_the_binaries_read() {
    let rendered = render();
    let environment: Value =
        serde_json::from_slice(&std::fs::read(rendered.dir.join("task-environment.json")).unwrap())
            .unwrap();
    // What the AWS backend reads from the environment, asked of its own parser; and what
    // the logging setup reads.
    let asked = std::sync::Mutex::new(BTreeSet::new());
    let _ = accessflow_shared::aws::AwsSettings::from_lookup(|name| {
        asked.lock().unwrap().insert(name.to_string());
        (name == "ACCESSFLOW_BUCKET").then(|| "b".to_string())
    });
    let mut aws_backend = asked.into_inner().unwrap();
    aws_backend.extend(
        accessflow_shared::telemetry::ENVIRONMENT
            .iter()
            .map(|s| s.to_string()),
    );
    for (binary_name, subcommand) in [("worker", "serve"), ("coordinator", "start")] {
        let mut known = aws_backend.clone();
        known.extend(env_names_in_help(binary_name, &[]));
        known.extend(env_names_in_help(binary_name, &[subcommand]));
        let names = strings(&environment[binary_name]);
        assert!(
            !names.is_empty(),
            "no environment rendered for {binary_name}"
        );
        for name in names {
            assert!(
                known.contains(&name),
                "the {binary_name} task definition sets {name}, which `{binary_name}` never reads (it reads {known:?})"
            );
        }
    }
}
