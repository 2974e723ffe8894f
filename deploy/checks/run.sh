#!/bin/sh
# Static checks of the deployment files (terraform/, deploy/Dockerfile), for .ci/run.
#
#   deploy/checks/run.sh
#
# 1. a virtualenv under target/deploy-venv with deploy/checks/requirements.txt (made once,
#    remade when requirements.txt changes);
# 2. `terraform fmt -check -recursive terraform`, only if a terraform binary is on PATH;
# 3. every .tf file parsed with python-hcl2 (any parse error fails);
# 4. the IAM policies of the worker, coordinator, exporter and customer audit roles (and of
#    the metrics collector sidecars) rendered from the .tf files (render_policies.py); the
#    static monitoring decisions (read-only exporter role, remote write to the one AMP
#    workspace, the exporter alarms, the JSON ERROR-line filter) and, if
#    target/release/worker exists, a table of expected decisions checked with
#    `worker check` (decisions.py);
# 5. with a terraform binary AND the hashicorp/aws provider in a local plugin directory
#    (TF_PLUGIN_DIR, default /opt/tf-plugins; nothing is downloaded): `terraform init
#    -plugin-dir`, `validate` and `plan` of the example and of the customer role in a
#    scratch copy (with deploy/prometheus and deploy/grafana, which the monitoring module
#    reads), the rendered policies compared with the provider's, the planned containers,
#    alarms and filters checked (plan_check.py);
# 6. checkov on terraform/ (0 failed checks; skips are written next to the resource with
#    their reason) and on deploy/Dockerfile if it exists.
#
# Without a local provider, `terraform init/validate/plan` are not run: the provider would
# have to be downloaded from the Terraform registry.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
CHECKS=deploy/checks
VENV=${DEPLOY_VENV:-target/deploy-venv}
OUT=target/deploy-checks
start=$(date +%s)

# 1. The virtualenv.
stamp="$VENV/.requirements"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$CHECKS/requirements.txt" "$stamp"; then
    echo "deploy checks: creating $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$CHECKS/requirements.txt"
    cp "$CHECKS/requirements.txt" "$stamp"
fi
PY="$VENV/bin/python"

# 2. terraform fmt.
if command -v terraform >/dev/null 2>&1; then
    echo "deploy checks: terraform fmt -check -recursive terraform ($(command -v terraform))"
    if ! terraform fmt -check -recursive terraform 2>/dev/null; then
        echo "deploy checks: FAILED: the files above are not formatted (terraform fmt -recursive terraform)" >&2
        exit 1
    fi
else
    echo "deploy checks: terraform not on PATH: terraform fmt skipped"
fi

# 3. Every .tf file parses.
"$PY" - <<'PYEOF'
import sys
from pathlib import Path
import hcl2
files = sorted(Path("terraform").rglob("*.tf"))
bad = 0
for f in files:
    try:
        with f.open() as fh:
            hcl2.load(fh)
    except Exception as e:
        bad += 1
        print(f"deploy checks: {f}: parse error: {e}", file=sys.stderr)
if not files:
    sys.exit("deploy checks: no .tf files under terraform/")
print(f"deploy checks: python-hcl2 parsed {len(files) - bad}/{len(files)} .tf files")
if bad:
    sys.exit(1)
# The example's variables file sets every root variable without a default, and only those
# that exist.
example = Path("terraform/examples/complete")
declared, required = set(), set()
for f in example.glob("*.tf"):
    with f.open() as fh:
        for v in hcl2.load(fh).get("variable", []):
            for name, body in v.items():
                declared.add(name)
                if "default" not in body:
                    required.add(name)
with (example / "terraform.tfvars.example").open() as fh:
    given = {k for k in hcl2.load(fh) if not k.startswith("__")}
problems = [f"missing {sorted(required - given)}"] if required - given else []
problems += [f"undeclared {sorted(given - declared)}"] if given - declared else []
if problems:
    sys.exit(f"deploy checks: terraform.tfvars.example: {'; '.join(problems)}")
print(f"deploy checks: terraform.tfvars.example sets all {len(required)} required variables")
PYEOF

# 4. The roles' policies, rendered; decided by the engine when the binary exists.
rm -rf "$OUT"
"$PY" "$CHECKS/render_policies.py" --out "$OUT/rendered"
if [ -x target/release/worker ]; then
    "$PY" "$CHECKS/decisions.py" --rendered "$OUT/rendered" --worker target/release/worker
else
    echo "deploy checks: target/release/worker not built: only the static decisions of decisions.py run"
    "$PY" "$CHECKS/decisions.py" --rendered "$OUT/rendered"
fi

# 5. terraform validate + plan against a local provider mirror.
PLUGIN_DIR=${TF_PLUGIN_DIR:-/opt/tf-plugins}
if command -v terraform >/dev/null 2>&1 && [ -d "$PLUGIN_DIR/registry.terraform.io/hashicorp/aws" ]; then
    echo "deploy checks: terraform validate + plan with the provider in $PLUGIN_DIR"
    "$PY" "$CHECKS/plan_check.py" --rendered "$OUT/rendered" --plugin-dir "$PLUGIN_DIR"
else
    echo "deploy checks: no terraform binary or no hashicorp/aws provider in $PLUGIN_DIR: terraform validate/plan skipped"
fi

# 6. checkov (--skip-download: no call to Prisma Cloud for guidelines; the checks are local).
echo "deploy checks: checkov -d terraform"
"$VENV/bin/checkov" -d terraform --quiet --compact --skip-download
if [ -f deploy/Dockerfile ]; then
    echo "deploy checks: checkov -f deploy/Dockerfile"
    "$VENV/bin/checkov" -f deploy/Dockerfile --framework dockerfile --quiet --compact --skip-download
else
    echo "deploy checks: deploy/Dockerfile does not exist: its checkov run skipped"
fi

echo "deploy checks: all passed in $(( $(date +%s) - start )) s"
