#!/usr/bin/env python3
"""Cross-check render_policies.py against Terraform's own rendering, with a local provider.

    plan_check.py --rendered DIR --plugin-dir /opt/tf-plugins

Needs a `terraform` binary and the hashicorp/aws provider in a local plugin directory (a
filesystem mirror: nothing is downloaded). In a scratch copy of terraform/ it runs
`terraform init -backend=false -plugin-dir=...`, `terraform validate` and `terraform plan`
of the complete example (with render_policies.py's example values) and of a root that
calls the customer_role module, against fake credentials and a fake STS endpoint on
127.0.0.1 that answers GetCallerIdentity (the only AWS call the plan makes: every other
planned value is computed locally by the provider). Then it compares, after normalising
single strings to lists:

- the provider's JSON of the worker task role, coordinator task role and customer audit
  role policies (and their trust policies) with the renderer's RolePolicyList /
  AssumeRolePolicyDocument;
- the customer role's `tenants_snippet` output parses as TOML and names the account, the
  role and the ExternalId.

(The containers' environment is not compared: the provider leaves a new task definition's
container_definitions unknown at plan time. task-environment.json is read from the same
locals the container definitions are built from.)

Any difference fails: the renderer would otherwise prove least privilege of a policy
Terraform does not deploy.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render_policies as rp  # noqa: E402

STS_ACCOUNT = {"value": rp.ACCOUNT}


class FakeSts(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode()
        if "Action=GetCallerIdentity" not in body:
            self.send_error(400, f"fake STS: unexpected request {body[:200]}")
            return
        account = STS_ACCOUNT["value"]
        xml = (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<GetCallerIdentityResult>"
            f"<Arn>arn:aws:iam::{account}:user/plan-check</Arn>"
            "<UserId>AIDAPLANCHECK</UserId>"
            f"<Account>{account}</Account>"
            "</GetCallerIdentityResult>"
            "<ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(xml)))
        self.end_headers()
        self.wfile.write(xml)

    def log_message(self, *args):
        pass


PROVIDER_OVERRIDE = """
provider "aws" {{
  region                      = "{region}"
  access_key                  = "plan-check"
  secret_key                  = "plan-check"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {{
    sts = "{sts}"
  }}
}}
"""


def terraform(args, cwd: Path, plugin_dir: Path | None = None) -> str:
    env = dict(os.environ, TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1", TF_CLI_CONFIG_FILE=os.devnull)
    out = subprocess.run(["terraform", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"plan_check: terraform {' '.join(args)} in {cwd} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def plan_json(root: Path, plugin_dir: Path, sts_url: str, tfvars: dict, extra_override: str = "") -> dict:
    (root / "plan_check_override.tf").write_text(PROVIDER_OVERRIDE.format(region=rp.REGION, sts=sts_url) + extra_override)
    (root / "terraform.tfvars.json").write_text(json.dumps(tfvars))
    terraform(["init", "-backend=false", f"-plugin-dir={plugin_dir}", "-input=false", "-no-color"], root)
    terraform(["validate", "-no-color"], root)
    terraform(["plan", "-out=plan.bin", "-input=false", "-lock=false", "-no-color"], root)
    return json.loads(terraform(["show", "-json", "plan.bin"], root))


def find(module: dict, address: str):
    """The value of the resource or data source `address` anywhere in a plan's module tree."""
    for r in module.get("resources", []):
        if r["address"] == address:
            return r["values"]
    for child in module.get("child_modules", []):
        v = find(child, address)
        if v is not None:
            return v
    return None


def lookup(plan: dict, address: str) -> dict:
    for tree in (plan.get("prior_state", {}).get("values", {}).get("root_module", {}), plan["planned_values"]["root_module"]):
        v = find(tree, address)
        if v is not None:
            return v
    raise SystemExit(f"plan_check: {address} is not in the plan")


def normalise(doc):
    """IAM JSON with every string-or-list field as a sorted list, for comparison."""
    if isinstance(doc, str):
        doc = json.loads(doc)
    out = {"Version": doc.get("Version"), "Statement": []}
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    as_list = lambda v: sorted(v) if isinstance(v, list) else [v]  # noqa: E731
    for st in statements:
        n = {}
        for k, v in st.items():
            if k in ("Action", "NotAction", "Resource", "NotResource"):
                n[k] = as_list(v)
            elif k in ("Principal", "NotPrincipal"):
                n[k] = v if v == "*" else {pk: as_list(pv) for pk, pv in v.items()}
            elif k == "Condition":
                n[k] = {t: {ck: as_list(cv) for ck, cv in kv.items()} for t, kv in v.items()}
            else:
                n[k] = v
        out["Statement"].append(n)
    return out


def autoscaling_problems(plan: dict) -> list[str]:
    """The worker service's step policy, as the provider plans it, sets exactly
    ceil(AccountsWithWork / worker_concurrency) tasks, capped at max_tasks, for every metric
    value (the steps are relative to the alarm's threshold)."""
    variables = plan.get("variables", {})
    max_tasks = int(variables["max_tasks"]["value"])
    concurrency = int(variables["worker_concurrency"]["value"])
    policy = lookup(plan, "module.worker_service.aws_appautoscaling_policy.accounts_with_work")
    alarm = lookup(plan, "module.worker_service.aws_cloudwatch_metric_alarm.accounts_with_work")
    threshold = float(alarm["threshold"])
    config = policy["step_scaling_policy_configuration"][0]
    if config["adjustment_type"] != "ExactCapacity":
        return [f"autoscaling: adjustment type {config['adjustment_type']}, not ExactCapacity"]

    def bound(v):
        return None if v in (None, "") else threshold + float(v)

    steps = [(bound(a.get("metric_interval_lower_bound")), bound(a.get("metric_interval_upper_bound")), int(a["scaling_adjustment"]))
             for a in config["step_adjustment"]]
    problems = []
    for accounts in range(0, concurrency * max_tasks + 8):
        want = min(-(-accounts // concurrency), max_tasks)
        got = [c for lo, hi, c in steps if (lo is None or accounts >= lo) and (hi is None or accounts < hi)]
        if got != [want]:
            problems.append(f"autoscaling: {accounts} accounts with work give steps {got}, want exactly [{want}] (max_tasks {max_tasks}, concurrency {concurrency})")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description="compare render_policies.py with terraform plan")
    parser.add_argument("--rendered", required=True, type=Path)
    parser.add_argument("--plugin-dir", required=True, type=Path)
    args = parser.parse_args()
    rendered = args.rendered
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeSts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sts_url = f"http://127.0.0.1:{server.server_address[1]}"
    problems = []
    with tempfile.TemporaryDirectory(prefix="accessflow-plan-check-") as tmp:
        tree = Path(tmp) / "terraform"
        shutil.copytree(rp.TERRAFORM, tree, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"))

        # The complete example, with the renderer's example values.
        example = tree / "examples" / "complete"
        # The core module's ARNs and the bucket's id are known only after apply, and the
        # policy documents that use them would stay unknown in the plan: the module
        # inputs that carry them are set to what render_policies.py says they will be.
        values = json.loads((rendered / "values.json").read_text())
        known = {
            "table_name": values["table"],
            "table_arn": values["table_arn"],
            "bucket_name": values["bucket"],
            "bucket_arn": values["bucket_arn"],
            "kms_key_arn": f"arn:aws:kms:{rp.REGION}:{rp.ACCOUNT}:key/{rp.KMS_KEY_ID}",
        }
        override = "".join(
            f'module "{m}" {{\n' + "".join(f"  {k} = {json.dumps(v)}\n" for k, v in known.items()) + "}\n"
            for m in ("worker_service", "coordinator_schedule")
        )
        STS_ACCOUNT["value"] = rp.ACCOUNT
        plan = plan_json(example, args.plugin_dir, sts_url, rp.EXAMPLE_TFVARS, override)
        roles = {
            "worker.json": ("module.worker_service", "worker_task", "ecs_tasks_assume"),
            "coordinator.json": ("module.coordinator_schedule", "coordinator_task", "ecs_tasks_assume"),
        }
        for file, (module, policy, trust) in roles.items():
            role = json.loads((rendered / file).read_text())["RoleDetailList"][0]
            doc = lookup(plan, f"{module}.data.aws_iam_policy_document.{policy}")
            if "json" not in doc:
                raise SystemExit(f"plan_check: {module}.data.aws_iam_policy_document.{policy} is unknown at plan time")
            got = normalise(doc["json"])
            want = normalise(role["RolePolicyList"][0]["PolicyDocument"])
            if got != want:
                problems.append(f"{file}: terraform renders\n{json.dumps(got, indent=1)}\nrender_policies.py\n{json.dumps(want, indent=1)}")
            got = normalise(lookup(plan, f"{module}.data.aws_iam_policy_document.{trust}")["json"])
            if got != normalise(role["AssumeRolePolicyDocument"]):
                problems.append(f"{file}: trust policies differ: {got} vs {role['AssumeRolePolicyDocument']}")
        problems.extend(autoscaling_problems(plan))
        # The customer's side: a root calling customer_role, in the customer account.
        customer = Path(tmp) / "customer"
        customer.mkdir()
        worker_arn = json.loads((rendered / "worker.json").read_text())["RoleDetailList"][0]["Arn"]
        inputs = dict(rp.CUSTOMER_INPUTS, accessflow_principal_arn=worker_arn)
        (customer / "main.tf").write_text(
            'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws", version = "~> 5.0" }\n  }\n}\n'
            'provider "aws" {}\n'
            'module "audit" {\n  source = "../terraform/modules/customer_role"\n'
            + "".join(f"  {k} = {json.dumps(v)}\n" for k, v in inputs.items())
            + "}\n"
            'output "tenants_snippet" {\n  value = module.audit.tenants_snippet\n}\n'
        )
        STS_ACCOUNT["value"] = rp.CUSTOMER_ACCOUNT
        plan = plan_json(customer, args.plugin_dir, sts_url, {})
        role = json.loads((rendered / "customer_audit.json").read_text())["RoleDetailList"][0]
        got = normalise(lookup(plan, "module.audit.data.aws_iam_policy_document.audit")["json"])
        if got != normalise(role["RolePolicyList"][0]["PolicyDocument"]):
            problems.append(f"customer_audit.json: terraform renders {got}, render_policies.py {role['RolePolicyList'][0]['PolicyDocument']}")
        snippet = plan["planned_values"].get("outputs", {}).get("tenants_snippet", {}).get("value")
        try:
            import tomllib

            parsed = tomllib.loads(snippet or "")
            account = parsed["customers"][0]["accounts"][0]
            if (account["id"], account["role_arn"], account["external_id"]) != (
                rp.CUSTOMER_ACCOUNT,
                role["Arn"],
                rp.CUSTOMER_INPUTS["external_id"],
            ):
                problems.append(f"tenants_snippet names the wrong account, role or ExternalId:\n{snippet}")
        except Exception as e:  # a missing output, bad TOML, missing keys
            problems.append(f"tenants_snippet is not a usable tenants-file entry ({e!r}):\n{snippet}")
        got = normalise(lookup(plan, "module.audit.data.aws_iam_policy_document.trust")["json"])
        if got != normalise(role["AssumeRolePolicyDocument"]):
            problems.append(f"customer_audit.json: trust policies differ: {got} vs {role['AssumeRolePolicyDocument']}")
    server.shutdown()
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    if problems:
        return 1
    print("plan_check: terraform validate + plan of the example and of the customer role pass; the three rendered roles equal the provider's policy JSON; the planned autoscaling steps set ceil(accounts / concurrency) tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
