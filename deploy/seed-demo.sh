#!/bin/sh
# Seeds the demo customer's AWS accounts into moto and writes the tenants file that lists
# them: the one-shot `seed` service of deploy/compose.yaml, run in the moto image (it uses
# boto3 from moto's virtualenv).
#
# Each account gets the IAM data of an authorization-details document (the JSON of
# `aws iam get-account-authorization-details`; the stack mounts the test suite's
# testkit/fixtures/nightly_account.json: 2 users, 42 roles, a group of admins, a role
# assumable from another account, a permissions boundary). It is what
# testkit/src/seed.rs does for the Rust tests: customer managed policies, groups, users,
# roles, inline policies, attachments, group memberships, boundaries and tags, with the
# document's account ids in ARNs moved to the target account. Entities that exist already
# are left alone, so seeding twice is harmless.
#
# Settings (environment): MOTO_URL (http://moto:5000), DEMO_CUSTOMER (demo),
# DEMO_ACCOUNTS (space-separated 12-digit ids), DEMO_FIXTURE (the document),
# DEMO_TENANTS (where to write the tenants file), DEMO_EXTERNAL_ID.
set -eu
PYTHON=${PYTHON:-/opt/moto/bin/python}
exec "$PYTHON" - <<'PY'
import json, os, sys
import boto3
from botocore.exceptions import ClientError

url = os.environ.get("MOTO_URL", "http://moto:5000")
customer = os.environ.get("DEMO_CUSTOMER", "demo")
accounts = os.environ.get("DEMO_ACCOUNTS", "111111111111 222222222222 333333333333").split()
fixture = os.environ.get("DEMO_FIXTURE", "/seed/account.json")
tenants_out = os.environ.get("DEMO_TENANTS", "/demo/tenants.toml")
external_id = os.environ.get("DEMO_EXTERNAL_ID", "demo-external-id")
for a in accounts:
    if not (len(a) == 12 and a.isdigit()):
        sys.exit(f"seed: DEMO_ACCOUNTS: `{a}` is not a 12-digit account id")
with open(fixture) as f:
    details = json.load(f)
if not isinstance(details, dict):
    sys.exit(f"seed: {fixture}: authorization details must be a JSON object")

common = dict(endpoint_url=url, region_name="us-east-1")
sts = boto3.client("sts", aws_access_key_id="testing", aws_secret_access_key="testing", **common)


def iam_in(account):
    # moto keeps IAM per account, keyed by the credentials' account: AssumeRole's belong
    # to the role's account.
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/seeder",
                        RoleSessionName="seeder")["Credentials"]
    return boto3.client("iam", aws_access_key_id=c["AccessKeyId"],
                        aws_secret_access_key=c["SecretAccessKey"],
                        aws_session_token=c["SessionToken"], **common)


def rebase(arn, account):
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "iam" and parts[4] not in ("aws", ""):
        parts[4] = account
    return ":".join(parts)


def doc(v):
    if v is None:
        return '{"Version":"2012-10-17","Statement":[]}'
    if isinstance(v, str):
        from urllib.parse import unquote
        return unquote(v)
    return json.dumps(v)


def tolerate(call, **kw):
    try:
        call(**kw)
        return True
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("EntityAlreadyExists", "EntityAlreadyExistsException"):
            return False
        raise


def opt(d, key, name=None):
    return {name or key: d[key]} if d.get(key) else {}


def seed(iam, account):
    n = dict(policies=0, groups=0, users=0, roles=0)
    for p in details.get("Policies", []):
        arn = p.get("Arn", "")
        if not arn or arn.startswith("arn:aws:iam::aws:"):
            continue
        versions = p.get("PolicyVersionList", [])
        default = next((v for v in versions if v.get("IsDefaultVersion")), versions[0] if versions else {})
        n["policies"] += tolerate(iam.create_policy, PolicyName=p.get("PolicyName") or arn.rsplit("/", 1)[-1],
                                  PolicyDocument=doc(default.get("Document")), **opt(p, "Path"))
    attached = lambda e: [rebase(a["PolicyArn"], account) for a in e.get("AttachedManagedPolicies", []) if a.get("PolicyArn")]
    tags = lambda e: {"Tags": e["Tags"]} if e.get("Tags") else {}
    boundary = lambda e: ({"PermissionsBoundary": rebase(e["PermissionsBoundary"]["PermissionsBoundaryArn"], account)}
                          if (e.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn") else {})
    for g in details.get("GroupDetailList", []):
        name = g.get("GroupName")
        if not name:
            continue
        n["groups"] += tolerate(iam.create_group, GroupName=name, **opt(g, "Path"))
        for p in g.get("GroupPolicyList", []):
            iam.put_group_policy(GroupName=name, PolicyName=p.get("PolicyName", "inline"),
                                 PolicyDocument=doc(p.get("PolicyDocument")))
        for arn in attached(g):
            iam.attach_group_policy(GroupName=name, PolicyArn=arn)
    for u in details.get("UserDetailList", []):
        name = u.get("UserName")
        if not name:
            continue
        n["users"] += tolerate(iam.create_user, UserName=name, **opt(u, "Path"), **tags(u), **boundary(u))
        for group in u.get("GroupList", []):
            iam.add_user_to_group(GroupName=group, UserName=name)
        for p in u.get("UserPolicyList", []):
            iam.put_user_policy(UserName=name, PolicyName=p.get("PolicyName", "inline"),
                                PolicyDocument=doc(p.get("PolicyDocument")))
        for arn in attached(u):
            iam.attach_user_policy(UserName=name, PolicyArn=arn)
    for r in details.get("RoleDetailList", []):
        name = r.get("RoleName")
        if not name:
            continue
        n["roles"] += tolerate(iam.create_role, RoleName=name,
                               AssumeRolePolicyDocument=doc(r.get("AssumeRolePolicyDocument")),
                               **opt(r, "Path"), **tags(r), **boundary(r))
        for p in r.get("RolePolicyList", []):
            iam.put_role_policy(RoleName=name, PolicyName=p.get("PolicyName", "inline"),
                                PolicyDocument=doc(p.get("PolicyDocument")))
        for arn in attached(r):
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    return n


for account in accounts:
    print(f"seed: account {account}: created {seed(iam_in(account), account)}", flush=True)

lines = [f'[[customers]]\nid = "{customer}"\n']
for account in accounts:
    lines.append(
        f'[[customers.accounts]]\nid = "{account}"\n'
        f'role_arn = "arn:aws:iam::{account}:role/accessflow-reader"\n'
        f'external_id = "{external_id}"\n')
os.makedirs(os.path.dirname(tenants_out) or ".", exist_ok=True)
tmp = tenants_out + ".tmp"
with open(tmp, "w") as f:
    f.write("".join(lines))
os.chmod(tmp, 0o644)
os.replace(tmp, tenants_out)
print(f"seed: wrote {tenants_out} ({customer}: {' '.join(accounts)})", flush=True)
PY
