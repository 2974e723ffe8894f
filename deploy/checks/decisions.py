#!/usr/bin/env python3
"""Decide a table of requests against the rendered roles with Accessflow's own engine.

    decisions.py --rendered DIR --worker target/release/worker

DIR is render_policies.py's output. Each row is (role file, action, resource, context,
expected decision): what each role must be allowed, and next to it what must stay denied
(another deployment's queue, another alias prefix, a write the role has no business
doing). `worker check` decides each; a conditional Allow counts as a failure (every
condition here is given its context). Cross-account AssumeRole is judged by the worker
role's own identity statements: the engine answers ImplicitDeny for any cross-account
request (it does not combine the customer's trust policy from another account). The full proof that the roles grant exactly what the
binaries call is tests/tests/least_privilege.rs; this is the quick static version.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


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
    task = f"arn:aws:ecs:{region}:{acct}:task/{v['cluster']}/0123456789abcdef"
    other_task = f"arn:aws:ecs:{region}:{acct}:task/other/0123456789abcdef"
    W, C, A = "worker.json", "coordinator.json", "customer_audit.json"
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
        (C, "s3:GetObject", obj, [], no),
        (C, "s3:PutObject", obj, [], no),
        (C, "kms:CreateKey", "*", [], ok),
        (C, "kms:TagResource", key, ["aws:TagKeys=customer"], ok),
        (C, "kms:TagResource", key, ["aws:TagKeys=owner"], no),
        (C, "kms:DescribeKey", key, ours, ok),
        (C, "kms:CreateAlias", f"arn:aws:kms:{region}:{acct}:{alias}", [], ok),
        (C, "kms:CreateAlias", key, ["aws:ResourceTag/customer=acme"], ok),
        (C, "kms:CreateAlias", f"arn:aws:kms:{region}:{acct}:alias/aws/s3", [], no),
        (C, "kms:ScheduleKeyDeletion", key, ["aws:ResourceTag/customer=acme"], ok),
        (C, "kms:Decrypt", key, ours, no),
        (C, "kms:GenerateDataKey", key, ours, no),
        (C, "cloudwatch:PutMetricData", "*", [], no),  # the metric goes through the logs (EMF)
        (C, "sts:AssumeRole", v["customer_role_arn"], [], no),
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
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description="decide expected requests against the rendered roles")
    parser.add_argument("--rendered", required=True, type=Path)
    parser.add_argument("--worker", required=True, type=Path, help="the worker binary (worker check)")
    args = parser.parse_args()
    values = json.loads((args.rendered / "values.json").read_text())
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
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
