#!/usr/bin/env python3
"""Decide a table of requests against the rendered roles with Accessflow's own engine,
and check the monitoring decisions that need no engine.

    decisions.py --rendered DIR [--worker target/release/worker]

DIR is render_policies.py's output. Each row is (role file, action, resource, context,
expected decision): what each role must be allowed, and next to it what must stay denied
(another deployment's queue, another alias prefix, a write the role has no business
doing). `worker check` decides each; a conditional Allow counts as a failure (every
condition here is given its context). Cross-account AssumeRole is judged by the worker
role's own identity statements: the engine answers ImplicitDeny for any cross-account
request (it does not combine the customer's trust policy from another account). The full proof that the roles grant exactly what the
binaries call is tests/tests/least_privilege.rs; this is the quick static version.

Without --worker (the binary is not built) only the static decisions run, always:

- the exporter task role is read-only: every action of its own policy (exporter.json) has
  the access level Read or List in the action catalog the engine embeds
  (analysis/data/catalog.tsv.gz), none is a wildcard;
- the collector sidecars' policies (worker_collector.json, exporter_collector.json) are one
  statement: aps:RemoteWrite on the deployment's AMP workspace, nothing else; and the
  binaries' own policies grant no aps action;
- the alarms module (read with python-hcl2): alarms on the exporter's DlqMessages > 0,
  FailedAccounts > 0, NightPastDeadline >= 1 in namespace Accessflow with the dimension
  Deployment = name_prefix, notifying the alarm topic; an ExporterHeartbeat alarm whose
  missing data is breaching; the ERROR-line metric filter is the JSON pattern
  { $.level = "ERROR" }; and the complete example turns the exporter alarms, the
  Prometheus alerts and both collectors on.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def rows(v: dict) -> list:
    acct, region, prefix = v["account_id"], v["region"], v["name_prefix"]
    queue = f"arn:aws:sqs:{region}:{acct}:{prefix}-q-acme-{v['customer_account_id']}.fifo"
    dlq = f"arn:aws:sqs:{region}:{acct}:{prefix}-q-acme-{v['customer_account_id']}-dlq.fifo"
    other_queue = f"arn:aws:sqs:{region}:{acct}:other-q-acme-{v['customer_account_id']}.fifo"
    topic = f"arn:aws:sns:{region}:{acct}:{prefix}-t-acme-0.fifo"
    other_topic = f"arn:aws:sns:{region}:{acct}:other-t-acme-0.fifo"
    key = f"arn:aws:kms:{region}:{acct}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    alias = f"{v['kms_alias_prefix']}acme"
    ours = [f"kms:ResourceAliases={alias}"]
    theirs = ["kms:ResourceAliases=alias/aws/s3"]
    obj = f"{v['bucket_arn']}/{v['bucket_prefix']}acme/reports/20261126T020000Z/{v['customer_account_id']}/report.json"
    run_dir = obj.rsplit("/", 2)[0] + "/"
    task = f"arn:aws:ecs:{region}:{acct}:task/{v['cluster']}/0123456789abcdef"
    other_task = f"arn:aws:ecs:{region}:{acct}:task/other/0123456789abcdef"
    W, C, A = "worker.json", "coordinator.json", "customer_audit.json"
    E, WC, EC = "exporter.json", "worker_collector.json", "exporter_collector.json"
    workspace = v["prometheus_workspace_arn"]
    other_workspace = workspace.rsplit("/", 1)[0] + "/ws-ffffffff-ffff-4fff-8fff-ffffffffffff"
    ok, no = "Allowed", "Denied"
    return [
        # worker task role
        (W, "sqs:ReceiveMessage", queue, [], ok),
        (W, "sqs:DeleteMessage", queue, [], ok),
        (W, "sqs:ChangeMessageVisibility", queue, [], ok),
        (W, "sqs:SendMessage", dlq, [], ok),
        (W, "sqs:GetQueueAttributes", queue, [], ok),
        (W, "sqs:GetQueueUrl", queue, [], ok),
        (W, "sqs:ReceiveMessage", other_queue, [], no),
        (W, "sqs:CreateQueue", queue, [], no),
        (W, "sqs:DeleteQueue", queue, [], no),
        (W, "sns:Publish", topic, [], no),
        (W, "dynamodb:UpdateItem", v["table_arn"], [], ok),
        (W, "dynamodb:PutItem", v["table_arn"], [], no),
        (W, "dynamodb:Query", v["table_arn"], [], ok),
        (W, "dynamodb:Scan", v["table_arn"], [], no),
        (W, "dynamodb:DeleteTable", v["table_arn"], [], no),
        (W, "s3:PutObject", obj, [], ok),
        (W, "s3:GetObject", obj, [], ok),
        (W, "s3:ListBucket", v["bucket_arn"], [], ok),
        (W, "s3:DeleteObject", obj, [], no),
        (W, "kms:GenerateDataKey", key, ours, ok),
        (W, "kms:Decrypt", key, ours, ok),
        (W, "kms:Decrypt", key, theirs, no),
        (W, "kms:CreateKey", "*", [], no),
        # Cross-account: the engine needs the other account's side too and answers
        # ImplicitDeny, so for these the worker role's own (identity) statements are judged.
        (W, "sts:AssumeRole", v["customer_role_arn"], [], "IdentityAllows"),
        (W, "sts:AssumeRole", f"arn:aws:iam::{v['customer_account_id']}:role/OrganizationAccountAccessRole", [], "IdentityDenies"),
        (W, "ecs:UpdateTaskProtection", task, [], ok),
        (W, "ecs:GetTaskProtection", task, [], ok),
        (W, "ecs:UpdateTaskProtection", other_task, [], no),
        (W, "iam:GetAccountAuthorizationDetails", "*", [], no),
        # coordinator task role
        (C, "sqs:CreateQueue", queue, [], ok),
        (C, "sqs:SetQueueAttributes", dlq, [], ok),
        (C, "sqs:TagQueue", queue, [], ok),
        (C, "sqs:DeleteQueue", dlq, [], ok),
        (C, "sqs:ListQueues", "*", [], ok),
        (C, "sqs:SendMessage", queue, [], ok),
        (C, "sqs:ReceiveMessage", dlq, [], ok),
        (C, "sqs:CreateQueue", other_queue, [], no),
        (C, "sns:CreateTopic", topic, [], ok),
        (C, "sns:Subscribe", topic, [], ok),
        (C, "sns:Publish", topic, [], ok),
        (C, "sns:ListSubscriptionsByTopic", topic, [], ok),
        (C, "sns:ListTopics", "*", [], ok),
        (C, "sns:SetSubscriptionAttributes", "*", [], ok),
        (C, "sns:Unsubscribe", "*", [], ok),
        (C, "sns:Publish", other_topic, [], no),
        (C, "dynamodb:GetItem", v["table_arn"], [], ok),
        (C, "dynamodb:DeleteItem", v["table_arn"], [], ok),
        (C, "s3:ListBucket", v["bucket_arn"], [], ok),
        (C, "s3:DeleteObject", obj, [], ok),
        # the morning review: its own files in the run directory, never the reports
        (C, "s3:GetObject", obj, [], no),
        (C, "s3:PutObject", obj, [], no),
        (C, "s3:GetObject", obj.replace("report.json", "summary.json"), [], ok),
        (C, "s3:PutObject", obj.replace("report.json", "summary.json"), [], no),
        (C, "s3:GetObject", run_dir + "index.json", [], ok),
        (C, "s3:PutObject", run_dir + "index.html", [], ok),
        (C, "s3:PutObject", run_dir + "digest.html", [], ok),
        (C, "s3:GetObject", run_dir + "trend-point.json", [], ok),
        (C, "kms:CreateKey", "*", [], ok),
        (C, "kms:TagResource", key, ["aws:TagKeys=customer"], ok),
        (C, "kms:TagResource", key, ["aws:TagKeys=owner"], no),
        (C, "kms:DescribeKey", key, ours, ok),
        (C, "kms:CreateAlias", f"arn:aws:kms:{region}:{acct}:{alias}", [], ok),
        (C, "kms:CreateAlias", key, ["aws:ResourceTag/customer=acme"], ok),
        (C, "kms:CreateAlias", f"arn:aws:kms:{region}:{acct}:alias/aws/s3", [], no),
        (C, "kms:ScheduleKeyDeletion", key, ["aws:ResourceTag/customer=acme"], ok),
        (C, "kms:Decrypt", key, ours, ok),  # the review's objects are SSE-KMS
        (C, "kms:GenerateDataKey", key, ours, ok),
        (C, "kms:Decrypt", key, theirs, no),
        (C, "cloudwatch:PutMetricData", "*", [], no),  # the metric goes through the logs (EMF)
        (C, "sts:AssumeRole", v["customer_role_arn"], [], no),
        (W, "aps:RemoteWrite", workspace, [], no),  # the binary's policy: the sidecar's is apart
        # exporter task role (the exporter binary's policy): reads only
        (E, "dynamodb:GetItem", v["table_arn"], [], ok),
        (E, "dynamodb:Query", v["table_arn"], [], ok),
        (E, "dynamodb:UpdateItem", v["table_arn"], [], no),
        (E, "dynamodb:PutItem", v["table_arn"], [], no),
        (E, "dynamodb:DeleteItem", v["table_arn"], [], no),
        (E, "dynamodb:Scan", v["table_arn"], [], no),
        (E, "sqs:GetQueueAttributes", queue, [], ok),
        (E, "sqs:GetQueueAttributes", dlq, [], ok),
        (E, "sqs:GetQueueUrl", dlq, [], ok),
        (E, "sqs:GetQueueAttributes", other_queue, [], no),
        (E, "sqs:ReceiveMessage", dlq, [], no),
        (E, "sqs:SendMessage", queue, [], no),
        (E, "sqs:DeleteMessage", dlq, [], no),
        (E, "sqs:PurgeQueue", dlq, [], no),
        (E, "sqs:CreateQueue", queue, [], no),
        (E, "s3:GetObject", obj, [], no),
        (E, "kms:Decrypt", key, ours, no),
        (E, "cloudwatch:PutMetricData", "*", [], no),  # its metrics go through the logs (EMF)
        (E, "aps:RemoteWrite", workspace, [], no),
        # the collector sidecars' policies: remote write to the deployment's workspace only
        (WC, "aps:RemoteWrite", workspace, [], ok),
        (WC, "aps:RemoteWrite", other_workspace, [], no),
        (WC, "aps:QueryMetrics", workspace, [], no),
        (WC, "aps:DeleteWorkspace", workspace, [], no),
        (WC, "sqs:ReceiveMessage", queue, [], no),
        (EC, "aps:RemoteWrite", workspace, [], ok),
        (EC, "aps:RemoteWrite", other_workspace, [], no),
        (EC, "aps:GetSeries", workspace, [], no),
        (EC, "dynamodb:UpdateItem", v["table_arn"], [], no),
        # customer audit role (in the customer's account)
        (A, "iam:GetAccountAuthorizationDetails", "*", [], ok),
        (A, "iam:GenerateCredentialReport", "*", [], ok),
        (A, "iam:GetCredentialReport", "*", [], ok),
        (A, "iam:GenerateServiceLastAccessedDetails", f"arn:aws:iam::{v['customer_account_id']}:role/service-01", [], ok),
        (A, "iam:GenerateServiceLastAccessedDetails", f"arn:aws:iam::{v['customer_account_id']}:user/alice", [], ok),
        (A, "iam:GetServiceLastAccessedDetails", "*", [], ok),
        (A, "iam:CreateUser", f"arn:aws:iam::{v['customer_account_id']}:user/mallory", [], no),
        (A, "iam:PassRole", f"arn:aws:iam::{v['customer_account_id']}:role/admin", [], no),
        (A, "s3:GetObject", "arn:aws:s3:::customer-bucket/secret.txt", [], no),
        # ... and the resource inventory's metadata reads, never the data
        (A, "s3:ListAllMyBuckets", "*", [], ok),
        (A, "s3:GetAccountPublicAccessBlock", "*", [], ok),
        (A, "s3:GetBucketPolicy", "arn:aws:s3:::customer-bucket", [], ok),
        (A, "s3:GetBucketPublicAccessBlock", "arn:aws:s3:::customer-bucket", [], ok),
        (A, "s3:GetBucketOwnershipControls", "arn:aws:s3:::customer-bucket", [], ok),
        (A, "kms:GetKeyPolicy", f"arn:aws:kms:{region}:{v['customer_account_id']}:key/0b5e7d1a", [], ok),
        (A, "kms:Decrypt", f"arn:aws:kms:{region}:{v['customer_account_id']}:key/0b5e7d1a", [], no),
        (A, "sqs:GetQueueAttributes", f"arn:aws:sqs:{region}:{v['customer_account_id']}:orders", [], ok),
        (A, "sqs:ReceiveMessage", f"arn:aws:sqs:{region}:{v['customer_account_id']}:orders", [], no),
        (A, "sns:GetTopicAttributes", f"arn:aws:sns:{region}:{v['customer_account_id']}:alerts", [], ok),
        (A, "sns:Publish", f"arn:aws:sns:{region}:{v['customer_account_id']}:alerts", [], no),
        (A, "secretsmanager:GetResourcePolicy", f"arn:aws:secretsmanager:eu-central-1:{v['customer_account_id']}:secret:db-AbCdEf", [], ok),
        (A, "secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:eu-central-1:{v['customer_account_id']}:secret:db-AbCdEf", [], no),
        (A, "lambda:GetPolicy", f"arn:aws:lambda:{region}:{v['customer_account_id']}:function:thumbnailer", [], ok),
        (A, "lambda:InvokeFunction", f"arn:aws:lambda:{region}:{v['customer_account_id']}:function:thumbnailer", [], no),
        (A, "ecr:GetRepositoryPolicy", f"arn:aws:ecr:{region}:{v['customer_account_id']}:repository/images", [], ok),
        (A, "ecr:BatchGetImage", f"arn:aws:ecr:{region}:{v['customer_account_id']}:repository/images", [], no),
        (A, "dynamodb:GetResourcePolicy", f"arn:aws:dynamodb:{region}:{v['customer_account_id']}:table/orders", [], ok),
        (A, "dynamodb:GetItem", f"arn:aws:dynamodb:{region}:{v['customer_account_id']}:table/orders", [], no),
        (A, "s3:PutBucketPolicy", "arn:aws:s3:::customer-bucket", [], no),
    ]


# ------------------------------------------------------------------------------------
# Static decisions (no engine)
# ------------------------------------------------------------------------------------


def access_levels() -> dict:
    """service:Action (lower case) -> access level letter (R read, L list, W write, P
    permissions management, T tagging) from the engine's embedded action catalog."""
    levels = {}
    with gzip.open(REPO / "analysis" / "data" / "catalog.tsv.gz", "rt") as fh:
        for line in fh:
            cols = line.rstrip("\n").split("\t")
            if cols[0] == "A" and len(cols) >= 4:
                levels[f"{cols[1]}:{cols[2]}".lower()] = cols[3]
    return levels


def statements(path: Path) -> list:
    role = json.loads(path.read_text())["RoleDetailList"][0]
    out = []
    for policy in role["RolePolicyList"]:
        st = policy["PolicyDocument"]["Statement"]
        out.extend(st if isinstance(st, list) else [st])
    return out


def as_list(v):
    return v if isinstance(v, list) else [v]


def iam_problems(rendered: Path, values: dict) -> list[str]:
    problems = []
    levels = access_levels()
    for st in statements(rendered / "exporter.json"):
        if st.get("Effect") != "Allow":
            continue
        for action in as_list(st.get("Action", [])) + as_list(st.get("NotAction", [])):
            level = levels.get(action.lower())
            if "*" in action or "?" in action or "NotAction" in st:
                problems.append(f"exporter.json: {action} is a wildcard or a NotAction: the role must name its reads")
            elif level not in ("R", "L"):
                problems.append(f"exporter.json: {action} has access level {level!r} in the catalog: the exporter role is read-only")
    workspace = values["prometheus_workspace_arn"]
    for file in ("worker_collector.json", "exporter_collector.json"):
        got = [(st.get("Effect"), as_list(st.get("Action")), as_list(st.get("Resource")), st.get("Condition")) for st in statements(rendered / file)]
        if got != [("Allow", ["aps:RemoteWrite"], [workspace], None)]:
            problems.append(f"{file}: {got}, want exactly aps:RemoteWrite on {workspace}")
    for file in ("worker.json", "coordinator.json", "exporter.json"):
        for st in statements(rendered / file):
            if any(a.lower().startswith("aps:") or a == "*" for a in as_list(st.get("Action", []))):
                problems.append(f"{file}: grants {st.get('Action')}: only the collector sidecar's policy may write to AMP")
    return problems


def hcl(path: Path) -> dict:
    import hcl2

    with path.open() as fh:
        return hcl2.load(fh)


def one(v):
    return v[0] if isinstance(v, list) and len(v) == 1 else v


def unescape(text: str) -> str:
    """An HCL string literal's escapes (python-hcl2 keeps them)."""
    return text.replace('\\"', '"').replace("\\\\", "\\")


def alarm_problems() -> list[str]:
    problems = []
    alarms_dir = REPO / "terraform" / "modules" / "alarms"
    doc = hcl(alarms_dir / "main.tf")
    variables = {}
    for v in hcl(alarms_dir / "variables.tf").get("variable", []):
        variables.update(v)
    locals_ = {k: one(v) for block in doc.get("locals", []) for k, v in block.items()}
    resources = {(t, n): b for r in doc.get("resource", []) for t, named in r.items() for n, b in named.items()}
    default = lambda name: one(variables.get(name, {}).get("default"))  # noqa: E731
    topic = "${aws_sns_topic.alarms.arn}"

    if locals_.get("exporter_dimensions") != {"Deployment": "${var.name_prefix}"}:
        problems.append(f"alarms: local.exporter_dimensions is {locals_.get('exporter_dimensions')}, want {{Deployment = var.name_prefix}}")
    if default("exporter_metric_namespace") != "Accessflow":
        problems.append(f"alarms: exporter_metric_namespace defaults to {default('exporter_metric_namespace')!r}, want Accessflow")
    want = {
        "DlqMessages": ("GreaterThanThreshold", 0),
        "FailedAccounts": ("GreaterThanThreshold", 0),
        "NightPastDeadline": ("GreaterThanOrEqualToThreshold", 1),
    }
    state = locals_.get("exporter_state_alarms") or {}
    got = {a.get("metric"): (a.get("comparison"), a.get("threshold")) for a in state.values()}
    if got != want:
        problems.append(f"alarms: local.exporter_state_alarms alarms on {got}, want {want}")
    alarm = resources.get(("aws_cloudwatch_metric_alarm", "exporter_state"), {})
    expect = {
        "metric_name": "${each.value.metric}",
        "comparison_operator": "${each.value.comparison}",
        "threshold": "${each.value.threshold}",
        "namespace": "${var.exporter_metric_namespace}",
        "dimensions": "${local.exporter_dimensions}",
        "alarm_actions": [topic],
    }
    for key, value in expect.items():
        if one(alarm.get(key)) != value:
            problems.append(f"alarms: aws_cloudwatch_metric_alarm.exporter_state {key} = {one(alarm.get(key))!r}, want {value!r}")
    if "local.exporter_state_alarms" not in str(one(alarm.get("for_each"))):
        problems.append("alarms: aws_cloudwatch_metric_alarm.exporter_state is not one alarm per local.exporter_state_alarms")
    heartbeat = resources.get(("aws_cloudwatch_metric_alarm", "exporter_heartbeat"), {})
    expect = {
        "metric_name": "ExporterHeartbeat",
        "namespace": "${var.exporter_metric_namespace}",
        "dimensions": "${local.exporter_dimensions}",
        "comparison_operator": "LessThanThreshold",
        "threshold": 1,
        "treat_missing_data": "breaching",
        "alarm_actions": [topic],
    }
    for key, value in expect.items():
        if one(heartbeat.get(key)) != value:
            problems.append(f"alarms: aws_cloudwatch_metric_alarm.exporter_heartbeat {key} = {one(heartbeat.get(key))!r}, want {value!r}")
    periods = default("exporter_heartbeat_periods")
    if not isinstance(periods, int) or not 1 <= periods <= 12:
        problems.append(f"alarms: exporter_heartbeat_periods defaults to {periods!r}: a silent exporter must alarm within an hour")
    errors = resources.get(("aws_cloudwatch_log_metric_filter", "errors"), {})
    pattern = unescape(str(one(errors.get("pattern"))))
    if pattern != '{ $.level = "ERROR" }':
        problems.append(f"alarms: the ERROR-line metric filter's pattern is {pattern!r}, want the JSON pattern {{ $.level = \"ERROR\" }}")
    example = {k: v for m in hcl(REPO / "terraform" / "examples" / "complete" / "main.tf").get("module", []) for k, v in m.items()}
    for module, key in (
        ("alarms", "exporter_alarms_enabled"),
        ("alarms", "prometheus_alerts_enabled"),
        ("worker_service", "metrics_collector_enabled"),
        ("exporter_service", "metrics_collector_enabled"),
    ):
        if one(example.get(module, {}).get(key)) is not True:
            problems.append(f"examples/complete: module {module} does not set {key} = true")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description="decide expected requests against the rendered roles")
    parser.add_argument("--rendered", required=True, type=Path)
    parser.add_argument("--worker", type=Path, help="the worker binary (worker check); without it only the static decisions run")
    args = parser.parse_args()
    values = json.loads((args.rendered / "values.json").read_text())
    static = iam_problems(args.rendered, values) + alarm_problems()
    for f in static:
        print(f"FAIL {f}", file=sys.stderr)
    print(f"decisions: static monitoring decisions {'hold' if not static else f'FAILED ({len(static)})'}")
    if args.worker is None:
        print("decisions: no --worker: the engine's table of decisions is not run")
        return 1 if static else 0
    failures, count = [], 0
    for file, action, resource, context, expected in rows(values):
        path = args.rendered / file
        principal = json.loads(path.read_text())["RoleDetailList"][0]["Arn"]
        cmd = [str(args.worker), "check", str(path), "--principal", principal, "--action", action, "--resource", resource]
        for kv in context:
            cmd += ["--context", kv]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            failures.append(f"{file} {action} {resource}: worker check failed: {out.stderr.strip()}")
            continue
        r = json.loads(out.stdout)
        if expected.startswith("Identity"):
            allowed = any(
                st.get("policy_type") == "identity" and st.get("effect") == "Allow" and not st.get("conditional")
                for st in r.get("deciding_statements", [])
            )
            expected = "Allowed" if expected == "IdentityAllows" else "Denied"
        else:
            allowed = r["decision"] in ("Allow", "Allowed") and not r.get("conditional", False)
        got = "Allowed" if allowed else f"Denied ({r['decision']}{', conditional' if r.get('conditional') else ''})"
        count += 1
        if (expected == "Allowed") != allowed:
            failures.append(f"{file}: {action} on {resource} {context or ''}: expected {expected}, got {got}")
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    print(f"decisions: {count - len(failures)}/{len(rows(values))} as expected")
    return 1 if failures or static else 0


if __name__ == "__main__":
    sys.exit(main())
