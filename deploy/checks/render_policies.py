#!/usr/bin/env python3
"""Render the IAM policies of Accessflow's Terraform roles, without Terraform.

Parses the .tf files with python-hcl2 and evaluates, with concrete example values, what
the example deployment (terraform/examples/complete) would give each role:

- the worker task role        (terraform/modules/worker_service, aws_iam_role.task)
- the coordinator task role   (terraform/modules/coordinator_schedule, aws_iam_role.task)
- the exporter task role      (terraform/modules/exporter_service, aws_iam_role.task)
- the customer audit role     (terraform/modules/customer_role, aws_iam_role.audit),
  rendered in an example customer account that trusts the rendered worker role.

The worker and exporter task roles carry two inline policies: the binary's (`worker`,
`exporter`) and the ADOT collector sidecar's (`collector-remote-write`, aps:RemoteWrite on
the AMP workspace). They are rendered into separate files, so worker.json stays exactly
what the worker binary calls (tests/tests/least_privilege.rs proves it), and every inline
policy of those roles must be rendered into one of them.

Module inputs are followed through the example's module blocks (`module.core.table_arn`
-> the core module's output -> `aws_dynamodb_table.this.arn` -> the ARN such a table gets),
so what is rendered is what the example deploys. Writes into --out DIR:

- worker.json, coordinator.json, exporter.json, customer_audit.json (the binaries' own
  policies) and worker_collector.json, exporter_collector.json (the sidecars'): in the
  format of
  `aws iam get-account-authorization-details` (RoleDetailList with one role carrying its
  inline policies in RolePolicyList), which `worker check FILE --principal ARN --action A
  --resource ARN [--context K=V]` reads;
- values.json: the example values and the ARNs and patterns the policies are about;
- task-environment.json: {"worker": [...], "coordinator": [...], "exporter": [...]}, the
  environment variable names of the containers.

The evaluator knows only the constructs these files use (references to var, local, data,
module and resource attributes, `[0]` of a counted block; coalesce, tostring, a
conditional `c ? a : b`; jsonencode-free templates) and fails loudly on anything else: an
unresolvable policy must never be rendered half-way.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover
    sys.exit("render_policies.py needs python-hcl2: pip install -r deploy/checks/requirements.txt")

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
EXAMPLE_DIR = TERRAFORM / "examples" / "complete"

# The example values (the least-privilege test reads them back from values.json).
ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
CUSTOMER_ACCOUNT = "210987654321"
KMS_KEY_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"  # an example id of the deployment's key
AMP_WORKSPACE_ID = "ws-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"  # an example AMP workspace id
EXAMPLE_TFVARS = {
    # Values of the example's root variables without defaults (terraform.tfvars.example).
    "region": REGION,
    "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/accessflow:1.0.0",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0"],
    "customers": ["acme"],
}
CUSTOMER_INPUTS = {
    # What a customer passes to the customer_role module (accessflow_principal_arn is the
    # rendered worker role's ARN).
    "external_id": "acme-7f3a91",
    "customer_id": "acme",
    "customer_name": "Acme Corp",
}


class RenderError(Exception):
    pass


# ------------------------------------------------------------------------------------
# Reading modules
# ------------------------------------------------------------------------------------


def attr(block: dict, name: str, default=...):
    """An attribute of a python-hcl2 block (attributes come wrapped in a one-item list)."""
    if name not in block:
        if default is ...:
            raise RenderError(f"missing attribute {name!r} in block at line {block.get('__start_line__')}")
        return default
    value = block[name]
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    raise RenderError(f"{name!r} at line {block.get('__start_line__')} is not a single attribute")


def blocks(block: dict, name: str) -> list:
    """Nested blocks `name` of a block (a list of dicts)."""
    value = block.get(name, [])
    if not isinstance(value, list) or any(not isinstance(b, dict) for b in value):
        raise RenderError(f"{name!r} is not a block list")
    return value


class Module:
    """One Terraform module directory, parsed."""

    def __init__(self, path: Path):
        self.path = path
        self.variables: dict = {}
        self.locals: dict = {}
        self.outputs: dict = {}
        self.resources: dict = {}  # (type, name) -> block
        self.data: dict = {}  # (type, name) -> block
        self.modules: dict = {}  # name -> block
        files = sorted(path.glob("*.tf"))
        if not files:
            raise RenderError(f"no .tf files in {path}")
        for f in files:
            with f.open() as fh:
                try:
                    doc = hcl2.load(fh)
                except Exception as e:  # python-hcl2 raises lark errors
                    raise RenderError(f"{f}: cannot parse: {e}") from e
            for v in doc.get("variable", []):
                self.variables.update(v)
            for loc in doc.get("locals", []):
                for k, v in loc.items():
                    if not k.startswith("__"):
                        self.locals[k] = v
            for o in doc.get("output", []):
                self.outputs.update(o)
            for r in doc.get("resource", []):
                for rtype, named in r.items():
                    for rname, body in named.items():
                        self.resources[(rtype, rname)] = body
            for d in doc.get("data", []):
                for dtype, named in d.items():
                    for dname, body in named.items():
                        self.data[(dtype, dname)] = body
            for m in doc.get("module", []):
                self.modules.update(m)


class Instance:
    """A module with its input values: evaluates expressions in its scope."""

    def __init__(self, module: Module, inputs: dict, account: str, parent: "Instance | None" = None, children=None):
        self.module = module
        self.inputs = inputs
        self.account = account
        self.parent = parent
        self.children = children or {}
        self._locals: dict = {}

    # -- references ---------------------------------------------------------------
    def var(self, name: str):
        if name in self.inputs:
            v = self.inputs[name]
            return v.get() if isinstance(v, LazyInput) else v
        spec = self.module.variables.get(name)
        if spec is None:
            raise RenderError(f"{self.module.path}: var.{name} is not declared")
        if "default" not in spec:
            raise RenderError(f"{self.module.path}: var.{name} has no value and no default")
        default = spec["default"]
        return default[0] if isinstance(default, list) and len(default) == 1 else default

    def local(self, name: str):
        if name not in self._locals:
            if name not in self.module.locals:
                raise RenderError(f"{self.module.path}: local.{name} is not defined")
            raw = self.module.locals[name]
            raw = raw[0] if isinstance(raw, list) and len(raw) == 1 else raw
            self._locals[name] = self.value(raw)
        return self._locals[name]

    def data_attr(self, dtype: str, dname: str, attribute: str):
        if dtype == "aws_caller_identity" and attribute == "account_id":
            return self.account
        if dtype == "aws_region" and attribute in ("name", "region"):
            return REGION
        if dtype == "aws_partition" and attribute == "partition":
            return PARTITION
        if dtype == "aws_iam_policy_document" and attribute == "json":
            return json.dumps(self.policy_document(dname), sort_keys=False)
        raise RenderError(f"{self.module.path}: cannot resolve data.{dtype}.{dname}.{attribute}")

    def resource_attr(self, rtype: str, rname: str, attribute: str):
        body = self.module.resources.get((rtype, rname))
        if body is None:
            raise RenderError(f"{self.module.path}: {rtype}.{rname} does not exist")
        get = lambda a: self.value(attr(body, a))  # noqa: E731
        region, account = REGION, self.account
        computed = {
            ("aws_dynamodb_table", "arn"): lambda: f"arn:{PARTITION}:dynamodb:{region}:{account}:table/{get('name')}",
            ("aws_s3_bucket", "arn"): lambda: f"arn:{PARTITION}:s3:::{get('bucket')}",
            ("aws_s3_bucket", "id"): lambda: get("bucket"),
            ("aws_kms_key", "arn"): lambda: f"arn:{PARTITION}:kms:{region}:{account}:key/{KMS_KEY_ID}",
            ("aws_kms_key", "key_id"): lambda: KMS_KEY_ID,
            ("aws_iam_role", "arn"): lambda: f"arn:{PARTITION}:iam::{account}:role/{get('name')}",
            ("aws_iam_role", "id"): lambda: get("name"),
            ("aws_iam_role", "name"): lambda: get("name"),
            ("aws_ecs_cluster", "arn"): lambda: f"arn:{PARTITION}:ecs:{region}:{account}:cluster/{get('name')}",
            ("aws_ecs_cluster", "id"): lambda: f"arn:{PARTITION}:ecs:{region}:{account}:cluster/{get('name')}",
            ("aws_ecs_cluster", "name"): lambda: get("name"),
            ("aws_ecs_service", "name"): lambda: get("name"),
            ("aws_cloudwatch_log_group", "name"): lambda: get("name"),
            ("aws_cloudwatch_log_group", "arn"): lambda: f"arn:{PARTITION}:logs:{region}:{account}:log-group:{get('name')}",
            ("aws_ecs_task_definition", "family"): lambda: get("family"),
            ("aws_ecs_task_definition", "arn_without_revision"): lambda: f"arn:{PARTITION}:ecs:{region}:{account}:task-definition/{get('family')}",
            ("aws_secretsmanager_secret", "arn"): lambda: f"arn:{PARTITION}:secretsmanager:{region}:{account}:secret:{get('name')}-AbCdEf",
            ("aws_security_group", "id"): lambda: "sg-0123456789abcdef0",
            ("aws_sns_topic", "arn"): lambda: f"arn:{PARTITION}:sns:{region}:{account}:{get('name')}",
            ("aws_prometheus_workspace", "arn"): lambda: f"arn:{PARTITION}:aps:{region}:{account}:workspace/{AMP_WORKSPACE_ID}",
            ("aws_prometheus_workspace", "id"): lambda: AMP_WORKSPACE_ID,
            ("aws_prometheus_workspace", "prometheus_endpoint"): lambda: f"https://aps-workspaces.{region}.amazonaws.com/workspaces/{AMP_WORKSPACE_ID}/",
        }
        fn = computed.get((rtype, attribute))
        if fn is None and attribute in body and not isinstance(attr(body, attribute), dict):
            return get(attribute)
        if fn is None:
            raise RenderError(f"{self.module.path}: cannot resolve {rtype}.{rname}.{attribute}")
        return fn()

    def module_output_value(self, output: str):
        """This module's own output `output`."""
        spec = self.module.outputs.get(output)
        if spec is None:
            raise RenderError(f"{self.module.path}: output {output!r} does not exist")
        return self.value(attr(spec, "value"))

    def module_output(self, name: str, output: str):
        child = self.children.get(name)
        if child is None:
            raise RenderError(f"{self.module.path}: module.{name} is not instantiated")
        spec = child.module.outputs.get(output)
        if spec is None:
            raise RenderError(f"{child.module.path}: output {output!r} does not exist")
        return child.value(attr(spec, "value"))

    def reference(self, path: list):
        head = path[0]
        if head == "var" and len(path) >= 2:
            return self._index(self.var(path[1]), path[2:])
        if head == "local" and len(path) >= 2:
            return self._index(self.local(path[1]), path[2:])
        if head == "data" and len(path) >= 5 and isinstance(path[3], int):
            # data.TYPE.NAME[i].ATTR of a counted block: only instance 0 of a count that is 1.
            self.require_single_instance(self.module.data.get((path[1], path[2])), f"data.{path[1]}.{path[2]}", path[3])
            return self._index(self.data_attr(path[1], path[2], path[4]), path[5:])
        if head == "data" and len(path) >= 4:
            return self._index(self.data_attr(path[1], path[2], path[3]), path[4:])
        if head == "module" and len(path) >= 3:
            return self._index(self.module_output(path[1], path[2]), path[3:])
        if head.startswith("aws_") and len(path) >= 3:
            return self._index(self.resource_attr(path[0], path[1], path[2]), path[3:])
        raise RenderError(f"{self.module.path}: cannot resolve reference {'.'.join(map(str, path))}")

    def count_of(self, body: dict) -> int | None:
        """The evaluated `count` of a block, None without one."""
        if body is None or "count" not in body:
            return None
        n = self.value(attr(body, "count"))
        if not isinstance(n, int):
            raise RenderError(f"{self.module.path}: count at line {body.get('__start_line__')} is {n!r}")
        return n

    def require_single_instance(self, body, what: str, index: int):
        if body is None:
            raise RenderError(f"{self.module.path}: {what} does not exist")
        n = self.count_of(body)
        if n is None or index != 0 or n != 1:
            raise RenderError(f"{self.module.path}: {what}[{index}] with count {n!r}: the renderer reads only [0] of a count of 1")

    @staticmethod
    def _index(value, rest):
        for key in rest:
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError) as e:
                raise RenderError(f"cannot index {value!r} with {key!r}") from e
        return value

    # -- values and expressions ---------------------------------------------------------
    def value(self, raw):
        """A python-hcl2 value: strings may hold ${...} templates; lists and maps recurse."""
        if isinstance(raw, str):
            return self.template(raw)
        if isinstance(raw, list):
            return [self.value(v) for v in raw]
        if isinstance(raw, dict):
            return {k: self.value(v) for k, v in raw.items() if not k.startswith("__")}
        return raw

    def template(self, text: str):
        parts = split_template(text)
        if len(parts) == 1 and parts[0][0] == "expr":
            return Expr(parts[0][1], self).evaluate()
        out = []
        for kind, piece in parts:
            if kind == "lit":
                out.append(piece)
            else:
                v = Expr(piece, self).evaluate()
                if v is None or isinstance(v, (list, dict)):
                    raise RenderError(f"{self.module.path}: ${{{piece}}} is {v!r}, not a string")
                out.append(str(v).lower() if isinstance(v, bool) else str(v))
        return "".join(out)

    # -- policy documents -----------------------------------------------------------------
    def policy_document(self, name: str) -> dict:
        body = self.module.data.get(("aws_iam_policy_document", name))
        if body is None:
            raise RenderError(f"{self.module.path}: data.aws_iam_policy_document.{name} does not exist")
        for unsupported in ("dynamic", "source_policy_documents", "override_policy_documents", "override_json", "source_json"):
            if unsupported in body:
                raise RenderError(f"{self.module.path}: data.aws_iam_policy_document.{name} uses {unsupported}, which the renderer does not evaluate")
        statements = []
        for st in blocks(body, "statement"):
            out: dict = {}
            if "sid" in st:
                out["Sid"] = self.value(attr(st, "sid"))
            out["Effect"] = self.value(attr(st, "effect", "Allow"))
            for hcl_key, json_key in (("actions", "Action"), ("not_actions", "NotAction"), ("resources", "Resource"), ("not_resources", "NotResource")):
                if hcl_key in st:
                    v = self.value(attr(st, hcl_key))
                    v = v if isinstance(v, list) else [v]
                    if any(not isinstance(x, str) for x in v):
                        raise RenderError(f"{name}: {hcl_key} must be strings: {v!r}")
                    out[json_key] = v
            for key, json_key in (("principals", "Principal"), ("not_principals", "NotPrincipal")):
                if key in st:
                    principal: dict = {}
                    for p in blocks(st, key):
                        ptype = self.value(attr(p, "type"))
                        ids = self.value(attr(p, "identifiers"))
                        ids = ids if isinstance(ids, list) else [ids]
                        if ptype == "*" and ids == ["*"]:
                            principal = "*"
                            break
                        principal.setdefault(ptype, []).extend(ids)
                    out[json_key] = principal
            if "condition" in st:
                cond: dict = {}
                for c in blocks(st, "condition"):
                    test = self.value(attr(c, "test"))
                    variable = self.value(attr(c, "variable"))
                    values = self.value(attr(c, "values"))
                    values = values if isinstance(values, list) else [values]
                    cond.setdefault(test, {}).setdefault(variable, []).extend(values)
                out["Condition"] = cond
            statements.append(out)
        return {"Version": "2012-10-17", "Statement": statements}


def split_template(text: str):
    """Splits a string into literal parts and ${...} expressions (nested braces and quotes)."""
    parts, i, lit = [], 0, []
    while i < len(text):
        if text.startswith("$${", i):
            lit.append("${")
            i += 3
        elif text.startswith("${", i):
            if lit:
                parts.append(("lit", "".join(lit)))
                lit = []
            depth, j, in_str = 1, i + 2, False
            while j < len(text) and depth:
                ch = text[j]
                if in_str:
                    if ch == "\\":
                        j += 1
                    elif ch == '"':
                        in_str = False
                elif ch == '"':
                    in_str = True
                elif ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                j += 1
            if depth:
                raise RenderError(f"unterminated ${{ in {text!r}")
            parts.append(("expr", text[i + 2 : j - 1]))
            i = j
        elif text.startswith("%{", i):
            raise RenderError(f"template directives (%{{...}}) are not supported: {text!r}")
        else:
            lit.append(text[i])
            i += 1
    if lit or not parts:
        parts.append(("lit", "".join(lit)))
    return parts


TOKEN = re.compile(r'\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<name>[A-Za-z_][A-Za-z0-9_-]*)|(?P<op>[.,()\[\]?:]))')


class Expr:
    """A tiny HCL expression evaluator: literals, references, coalesce(), tostring(), and
    one conditional `cond ? a : b` (both branches are evaluated; cond must be a bool)."""

    FUNCTIONS = {
        "coalesce": lambda *a: next((x for x in a if x is not None and x != ""), None),
        "tostring": lambda x: x if isinstance(x, str) else json.dumps(x),
        "lower": lambda x: x.lower(),
        "join": lambda sep, xs: sep.join(xs),
    }

    def __init__(self, text: str, scope: Instance):
        self.text = text
        self.scope = scope
        self.tokens = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise RenderError(f"{scope.module.path}: cannot evaluate ${{{text}}} (unsupported syntax at {text[pos:]!r})")
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def take(self, expected=None):
        tok = self.peek()
        if tok[0] is None or (expected is not None and tok[1] != expected):
            raise RenderError(f"{self.scope.module.path}: cannot evaluate ${{{self.text}}}: expected {expected!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def evaluate(self):
        v = self.expression()
        if self.peek()[1] == "?":
            self.take("?")
            then = self.expression()
            self.take(":")
            otherwise = self.expression()
            if not isinstance(v, bool):
                raise RenderError(f"{self.scope.module.path}: the condition of ${{{self.text}}} is {v!r}, not a bool")
            v = then if v else otherwise
        if self.i != len(self.tokens):
            raise RenderError(f"{self.scope.module.path}: cannot evaluate ${{{self.text}}} (unsupported operator at {self.peek()[1]!r})")
        return v

    def expression(self):
        kind, tok = self.take()
        if kind == "num":
            return float(tok) if "." in tok else int(tok)
        if kind == "str":
            inner = json.loads(tok)
            return self.scope.template(inner)
        if kind == "name":
            if tok in ("true", "false"):
                return tok == "true"
            if tok == "null":
                return None
            if self.peek()[1] == "(":
                fn = self.FUNCTIONS.get(tok)
                if fn is None:
                    raise RenderError(f"{self.scope.module.path}: function {tok}() is not supported by the renderer")
                self.take("(")
                args = []
                while self.peek()[1] != ")":
                    args.append(self.expression())
                    if self.peek()[1] == ",":
                        self.take(",")
                self.take(")")
                return fn(*args)
            path = [tok]
            while self.peek()[1] in (".", "["):
                if self.take()[1] == ".":
                    path.append(self.take()[1])
                else:
                    key = self.expression()
                    self.take("]")
                    path.append(key)
            return self.scope.reference(path)
        raise RenderError(f"{self.scope.module.path}: cannot evaluate ${{{self.text}}}")


# ------------------------------------------------------------------------------------
# The example deployment and the roles
# ------------------------------------------------------------------------------------


def instantiate_example() -> Instance:
    root_module = Module(EXAMPLE_DIR)
    root = Instance(root_module, EXAMPLE_TFVARS, ACCOUNT)
    # Instantiate child modules in declaration order (later ones may use earlier outputs).
    for name, block in root_module.modules.items():
        source = attr(block, "source")
        child_module = Module((EXAMPLE_DIR / source).resolve())
        inputs = {}
        for key, raw in block.items():
            if key in ("source", "version", "providers", "depends_on", "count", "for_each") or key.startswith("__"):
                continue
            inputs[key] = LazyInput(root, attr(block, key))
        root.children[name] = Instance(child_module, inputs, ACCOUNT, parent=root)
    return root


class LazyInput:
    """A module input evaluated in the caller's scope on first use."""

    def __init__(self, scope: Instance, raw):
        self.scope, self.raw, self.done, self.v = scope, raw, False, None

    def get(self):
        if not self.done:
            self.v, self.done = self.scope.value(self.raw), True
        return self.v


def attached_policies(inst: Instance, role_resource: str) -> list:
    """The aws_iam_role_policy resources of the module attached to the role (by resource
    name), without those whose count is 0."""
    out = []
    for (rtype, rname), body in sorted(inst.module.resources.items()):
        if rtype != "aws_iam_role_policy":
            continue
        if attr(body, "role") not in (f"${{aws_iam_role.{role_resource}.id}}", f"${{aws_iam_role.{role_resource}.name}}"):
            continue
        if inst.count_of(body) == 0:
            continue
        out.append(rname)
    return out


def role_details(inst: Instance, role_resource: str, only: list | None = None) -> dict:
    """One role as `get-account-authorization-details` shows it: name, ARN, trust policy,
    and the aws_iam_role_policy resources of the module attached to it (all of them, or
    those named in `only`)."""
    role = inst.module.resources.get(("aws_iam_role", role_resource))
    if role is None:
        raise RenderError(f"{inst.module.path}: aws_iam_role.{role_resource} does not exist")
    name = inst.value(attr(role, "name"))
    arn = inst.resource_attr("aws_iam_role", role_resource, "arn")
    trust = json.loads(inst.value(attr(role, "assume_role_policy")))
    policies = []
    for rname in attached_policies(inst, role_resource):
        if only is not None and rname not in only:
            continue
        body = inst.module.resources[("aws_iam_role_policy", rname)]
        policies.append({"PolicyName": inst.value(attr(body, "name")), "PolicyDocument": json.loads(inst.value(attr(body, "policy")))})
    if not policies:
        raise RenderError(f"{inst.module.path}: aws_iam_role.{role_resource} has no aws_iam_role_policy")
    for (rtype, _), _body in inst.module.resources.items():
        if rtype in ("aws_iam_role_policy_attachment", "aws_iam_policy"):
            raise RenderError(f"{inst.module.path}: {rtype} is not rendered; use inline aws_iam_role_policy")
    return {
        "UserDetailList": [],
        "GroupDetailList": [],
        "RoleDetailList": [
            {
                "Path": "/",
                "RoleName": name,
                "RoleId": "AROA" + re.sub(r"[^A-Z0-9]", "", name.upper()).ljust(17, "X")[:17],
                "Arn": arn,
                "CreateDate": "2026-01-01T00:00:00Z",
                "AssumeRolePolicyDocument": trust,
                "InstanceProfileList": [],
                "RolePolicyList": policies,
                "AttachedManagedPolicies": [],
                "Tags": [],
                "RoleLastUsed": {},
            }
        ],
        "Policies": [],
    }


def environment_names(inst: Instance, local_name: str) -> list:
    env = inst.local(local_name)
    if not isinstance(env, dict):
        raise RenderError(f"local.{local_name} is not a map")
    return sorted(env)


def render(out: Path) -> dict:
    root = instantiate_example()
    worker = root.children["worker_service"]
    coordinator = root.children["coordinator_schedule"]
    exporter = root.children["exporter_service"]
    monitoring = root.children["monitoring"]
    core = root.children["core"]

    # The binaries' own policies, and the collector sidecars' apart (see the docstring);
    # an inline policy of these roles that neither file renders is an error.
    split = {
        "worker": (worker, {"worker.json": ["task"], "worker_collector.json": ["collector_remote_write"]}),
        "exporter": (exporter, {"exporter.json": ["task"], "exporter_collector.json": ["collector_remote_write"]}),
    }
    docs = {}
    for who, (inst, files_of_role) in split.items():
        rendered = [name for names in files_of_role.values() for name in names]
        attached = attached_policies(inst, "task")
        if sorted(attached) != sorted(rendered):
            raise RenderError(f"{inst.module.path}: the {who} task role has the inline policies {attached}, the renderer renders {rendered}")
        for file, names in files_of_role.items():
            docs[file] = role_details(inst, "task", only=names)
    worker_doc = docs["worker.json"]
    coordinator_doc = role_details(coordinator, "task")
    worker_role_arn = worker_doc["RoleDetailList"][0]["Arn"]

    customer = Instance(
        Module(TERRAFORM / "modules" / "customer_role"),
        dict(CUSTOMER_INPUTS, accessflow_principal_arn=worker_role_arn, role_name=worker.var("customer_role_name")),
        CUSTOMER_ACCOUNT,
    )
    customer_doc = role_details(customer, "audit")

    name_prefix = root.var("name_prefix")
    alias_prefix = root.local("kms_alias_prefix")
    cluster = worker.local("cluster_name")
    values = {
        "account_id": ACCOUNT,
        "region": REGION,
        "partition": PARTITION,
        "name_prefix": name_prefix,
        "table": core.local("table_name"),
        "table_arn": core.resource_attr("aws_dynamodb_table", "this", "arn"),
        "bucket": core.local("bucket_name"),
        "bucket_arn": core.resource_attr("aws_s3_bucket", "data", "arn"),
        "bucket_prefix": core.var("bucket_prefix"),
        "kms_alias_prefix": alias_prefix,
        "kms_alias_arn_prefix": f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:{alias_prefix}",
        "queue_arn_prefix": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name_prefix}-q-",
        "topic_arn_prefix": f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{name_prefix}-t-",
        "cluster": cluster,
        "task_protection_arn_pattern": f"arn:{PARTITION}:ecs:{REGION}:{ACCOUNT}:task/{cluster}/*",
        "worker_role_arn": worker_role_arn,
        "coordinator_role_arn": coordinator_doc["RoleDetailList"][0]["Arn"],
        "customer_account_id": CUSTOMER_ACCOUNT,
        "customer_role_name": worker.var("customer_role_name"),
        "customer_role_pattern": f"arn:{PARTITION}:iam::*:role/{worker.var('customer_role_name')}",
        "customer_role_arn": customer_doc["RoleDetailList"][0]["Arn"],
        "customer_external_id": CUSTOMER_INPUTS["external_id"],
        "exporter_role_arn": docs["exporter.json"]["RoleDetailList"][0]["Arn"],
        "prometheus_workspace_arn": monitoring.resource_attr("aws_prometheus_workspace", "this", "arn"),
        "prometheus_remote_write_url": monitoring.module_output_value("remote_write_url"),
        "deliver_by": exporter.var("deliver_by"),
    }
    env = {
        "worker": environment_names(worker, "worker_environment"),
        "coordinator": environment_names(coordinator, "coordinator_environment"),
        "exporter": environment_names(exporter, "exporter_environment"),
    }
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "worker.json": worker_doc,
        "worker_collector.json": docs["worker_collector.json"],
        "coordinator.json": coordinator_doc,
        "exporter.json": docs["exporter.json"],
        "exporter_collector.json": docs["exporter_collector.json"],
        "customer_audit.json": customer_doc,
        "values.json": values,
        "task-environment.json": env,
    }
    for name, doc in files.items():
        (out / name).write_text(json.dumps(doc, indent=2) + "\n")
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="directory for the rendered files")
    args = parser.parse_args()
    try:
        files = render(args.out)
    except RenderError as e:
        print(f"render_policies.py: {e}", file=sys.stderr)
        return 1
    for name, doc in files.items():
        if name.endswith(".json") and "RoleDetailList" in doc:
            role = doc["RoleDetailList"][0]
            n = sum(len(p["PolicyDocument"]["Statement"]) for p in role["RolePolicyList"])
            print(f"{args.out / name}: {role['Arn']} ({n} statements)")
        else:
            print(f"{args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
