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

- the provider's JSON of the worker, coordinator and exporter task role policies, the
  worker's and exporter's collector sidecar policies, and the customer audit role policy
  (and their trust policies) with the renderer's RolePolicyList / AssumeRolePolicyDocument;
- the task containers of the worker and exporter services, read back from the plan
  through outputs added to the scratch copy: the binaries serve /metrics on the loopback
  port the ADOT collector's configuration (AOT_CONFIG_CONTENT) scrapes, as job
  accessflow-worker / accessflow-exporter, remote-writing to the workspace with SigV4; no
  port is published; the exporter runs `coordinator exporter ... --deliver-by`;
- the alarms on the exporter's metrics (DlqMessages, FailedAccounts, NightPastDeadline,
  ExporterHeartbeat: namespace, Deployment dimension, comparison, missing data, the topic)
  and the ERROR-line metric filters (the JSON pattern, on the worker, coordinator and
  exporter log groups), as the provider plans them;
- the customer role's `tenants_snippet` output parses as TOML and names the account, the
  role and the ExternalId.

(The containers' environment is not compared: the provider leaves a new task definition's
container_definitions unknown at plan time, so the containers are read from the modules'
local.container_definitions instead. task-environment.json is read from the same locals
the container definitions are built from.)

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


CONTAINER_OUTPUTS = {
    # module directory -> the scratch root output that carries its local.container_definitions
    "worker_service": "plan_check_worker_containers",
    "exporter_service": "plan_check_exporter_containers",
}


def add_container_outputs(tree: Path) -> None:
    """Outputs in the scratch copy that expose the task containers to the plan."""
    for module, output in CONTAINER_OUTPUTS.items():
        (tree / "modules" / module / "plan_check_outputs.tf").write_text(
            'output "plan_check_container_definitions" {\n  value = local.container_definitions\n}\n'
        )
        with (tree / "examples" / "complete" / "plan_check_outputs.tf").open("a") as fh:
            fh.write(f'output "{output}" {{\n  value = module.{module}.plan_check_container_definitions\n}}\n')


def container_problems(plan: dict, values: dict) -> list[str]:
    """The worker's and the exporter's task containers, as planned (see the docstring)."""
    import yaml  # PyYAML comes with checkov (requirements.txt)

    outputs = plan["planned_values"].get("outputs", {})
    problems = []
    expect = {
        "plan_check_worker_containers": ("worker", "accessflow-worker", 9464, False, ["worker", "serve"]),
        "plan_check_exporter_containers": ("exporter", "accessflow-exporter", 9465, True, ["coordinator", "exporter"]),
    }
    for output, (main, job, port, collector_essential, command_head) in expect.items():
        containers = outputs.get(output, {}).get("value")
        if not containers:
            problems.append(f"containers: {output} is not in the plan (or unknown)")
            continue
        by_name = {c["name"]: c for c in containers}
        if sorted(by_name) != sorted([main, "collector"]):
            problems.append(f"containers: {main} task has {sorted(by_name)}, want [{main}, collector]")
            continue
        for c in containers:
            if c.get("portMappings"):
                problems.append(f"containers: {c['name']} publishes ports {c['portMappings']}: /metrics is for the sidecar on the loopback only")
            if c.get("readonlyRootFilesystem") is not True:
                problems.append(f"containers: {c['name']} has a writable root file system")
        command = by_name[main].get("command") or []
        addr = f"127.0.0.1:{port}"
        if command[: len(command_head)] != command_head or command[len(command_head):][:2] != ["--metrics-addr", addr]:
            problems.append(f"containers: {main} runs {command}, want {command_head + ['--metrics-addr', addr]} ...")
        if main == "exporter" and command[-2:] != ["--deliver-by", values["deliver_by"]]:
            problems.append(f"containers: the exporter runs {command}, want --deliver-by {values['deliver_by']} last")
        collector = by_name["collector"]
        if collector.get("essential") is not collector_essential:
            problems.append(f"containers: the {main} task's collector has essential={collector.get('essential')}, want {collector_essential}")
        env = {e["name"]: e["value"] for e in collector.get("environment", [])}
        try:
            config = yaml.safe_load(env["AOT_CONFIG_CONTENT"])
            scrape = config["receivers"]["prometheus"]["config"]["scrape_configs"]
            targets = [t for sc in scrape for st in sc["static_configs"] for t in st["targets"]]
            exporter = config["exporters"]["prometheusremotewrite"]
            sigv4 = config["extensions"]["sigv4auth"]
            pipeline = config["service"]["pipelines"]["metrics"]
        except Exception as e:  # a missing variable, bad YAML, missing keys
            problems.append(f"containers: the {main} task's collector configuration is not usable: {e!r}")
            continue
        if [sc["job_name"] for sc in scrape] != [job] or targets != [f"localhost:{port}"]:
            problems.append(f"containers: the {main} task's collector scrapes {[(sc['job_name']) for sc in scrape]} at {targets}, want {job} at localhost:{port}")
        if exporter.get("endpoint") != values["prometheus_remote_write_url"] or exporter.get("auth", {}).get("authenticator") != "sigv4auth":
            problems.append(f"containers: the {main} task's collector writes to {exporter.get('endpoint')} ({exporter.get('auth')}), want {values['prometheus_remote_write_url']} with sigv4auth")
        if sigv4 != {"region": values["region"], "service": "aps"}:
            problems.append(f"containers: the {main} task's collector signs with {sigv4}, want region {values['region']}, service aps")
        if pipeline.get("receivers") != ["prometheus"] or pipeline.get("exporters") != ["prometheusremotewrite"]:
            problems.append(f"containers: the {main} task's collector pipeline is {pipeline}")
        if "sigv4auth" not in config["service"].get("extensions", []):
            problems.append(f"containers: the {main} task's collector does not enable sigv4auth")
    service = lookup(plan, "module.exporter_service.aws_ecs_service.exporter")
    if (service["desired_count"], service["deployment_maximum_percent"]) != (1, 100):
        problems.append(f"exporter service: desired_count {service['desired_count']}, maximum {service['deployment_maximum_percent']} %: want exactly one exporter")
    return problems


def alarm_problems(plan: dict, values: dict) -> list[str]:
    """The exporter alarms and the ERROR-line filters, as planned."""
    problems = []
    prefix = values["name_prefix"]
    want = {
        # metric: (comparison, threshold, statistic, missing data)
        "DlqMessages": ("GreaterThanThreshold", 0, "Maximum", "notBreaching"),
        "FailedAccounts": ("GreaterThanThreshold", 0, "Maximum", "notBreaching"),
        "NightPastDeadline": ("GreaterThanOrEqualToThreshold", 1, "Maximum", "notBreaching"),
        "ExporterHeartbeat": ("LessThanThreshold", 1, "SampleCount", "breaching"),
    }
    alarms = {}

    def walk(module):
        for r in module.get("resources", []):
            if r["address"].startswith("module.alarms.") and r["type"] == "aws_cloudwatch_metric_alarm":
                alarms.setdefault(r["values"].get("metric_name"), []).append(r)
            if r["address"].startswith("module.alarms.aws_cloudwatch_log_metric_filter.errors"):
                filters[r["index"]] = r["values"]
        for child in module.get("child_modules", []):
            walk(child)

    filters = {}
    walk(plan["planned_values"]["root_module"])
    for metric, (comparison, threshold, statistic, missing) in want.items():
        found = alarms.get(metric, [])
        if len(found) != 1:
            problems.append(f"alarms: {len(found)} alarms on {metric}, want 1")
            continue
        v = found[0]["values"]
        got = (v["namespace"], v["dimensions"], v["comparison_operator"], float(v["threshold"]), v["statistic"], v["treat_missing_data"])
        if got != ("Accessflow", {"Deployment": prefix}, comparison, float(threshold), statistic, missing):
            problems.append(f"alarms: {found[0]['address']} is {got}, want {('Accessflow', {'Deployment': prefix}, comparison, float(threshold), statistic, missing)}")
        if metric == "ExporterHeartbeat" and int(v["period"]) * int(v["evaluation_periods"]) > 3600:
            problems.append(f"alarms: the heartbeat alarm waits {int(v['period']) * int(v['evaluation_periods'])} s")
    # Their actions are the alarm topic (an ARN unknown at plan time: read the configuration).
    config = plan["configuration"]["root_module"]["module_calls"]["alarms"]["module"]["resources"]
    for r in config:
        if r["address"] in ("aws_cloudwatch_metric_alarm.exporter_state", "aws_cloudwatch_metric_alarm.exporter_heartbeat"):
            refs = r["expressions"].get("alarm_actions", {}).get("references", [])
            if "aws_sns_topic.alarms.arn" not in refs:
                problems.append(f"alarms: {r['address']} does not notify the alarm topic ({refs})")
    if sorted(filters) != ["coordinator", "exporter", "worker"]:
        problems.append(f"alarms: ERROR-line filters on {sorted(filters)}, want coordinator, exporter, worker")
    for key, v in filters.items():
        if v["pattern"] != '{ $.level = "ERROR" }':
            problems.append(f"alarms: the {key} ERROR-line filter's pattern is {v['pattern']!r}")
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
        # The monitoring module reads the alert rules and the dashboards from deploy/.
        for part in ("deploy/prometheus", "deploy/grafana"):
            if (rp.REPO / part).is_dir():
                shutil.copytree(rp.REPO / part, Path(tmp) / part)
        add_container_outputs(tree)

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
            "prometheus_workspace_arn": values["prometheus_workspace_arn"],
            "prometheus_remote_write_url": values["prometheus_remote_write_url"],
        }
        inputs_of = {
            "worker_service": list(known),
            "coordinator_schedule": ["table_name", "table_arn", "bucket_name", "bucket_arn", "kms_key_arn"],
            "exporter_service": ["table_name", "table_arn", "bucket_name", "kms_key_arn", "prometheus_workspace_arn", "prometheus_remote_write_url"],
        }
        override = "".join(
            f'module "{m}" {{\n' + "".join(f"  {k} = {json.dumps(known[k])}\n" for k in keys) + "}\n"
            for m, keys in inputs_of.items()
        )
        STS_ACCOUNT["value"] = rp.ACCOUNT
        plan = plan_json(example, args.plugin_dir, sts_url, rp.EXAMPLE_TFVARS, override)
        roles = {
            "worker.json": ("module.worker_service", "worker_task", "ecs_tasks_assume"),
            "worker_collector.json": ("module.worker_service", "collector_remote_write[0]", "ecs_tasks_assume"),
            "coordinator.json": ("module.coordinator_schedule", "coordinator_task", "ecs_tasks_assume"),
            "exporter.json": ("module.exporter_service", "exporter_task", "ecs_tasks_assume"),
            "exporter_collector.json": ("module.exporter_service", "collector_remote_write[0]", "ecs_tasks_assume"),
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
        problems.extend(container_problems(plan, values))
        problems.extend(alarm_problems(plan, values))
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
    print(
        "plan_check: terraform validate + plan of the example and of the customer role pass; the six rendered policies equal the provider's policy JSON; "
        "the planned autoscaling steps set ceil(accounts / concurrency) tasks; the worker and exporter tasks serve /metrics on the loopback port their "
        "collector scrapes and remote-writes to the workspace; the exporter alarms and the JSON ERROR-line filters are planned as decided"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
