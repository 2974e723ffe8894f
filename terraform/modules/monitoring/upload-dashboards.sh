#!/bin/sh
# Puts Accessflow's dashboards into an Amazon Managed Grafana workspace through Grafana's
# HTTP API. Run by terraform_data.dashboards (grafana.tf) on the machine that applies; can
# be run by hand with the same environment:
#
#   GRAFANA_URL        https://g-xxxxxxxxxx.grafana-workspace.<region>.amazonaws.com
#   GRAFANA_TOKEN      a service account token with the Admin role
#   PROMETHEUS_URL     the AMP workspace's endpoint (.../workspaces/ws-.../)
#   PROMETHEUS_REGION  its region (SigV4)
#   DASHBOARDS_DIR     directory of the dashboards (*.json)
#   FOLDER_UID, FOLDER_TITLE  optional: default accessflow, Accessflow
#
# 1. The data source with the fixed uid `prometheus` (the uid the dashboards' panels
#    name): type prometheus, SigV4 with the workspace's IAM role (ec2_iam_role is
#    "Workspace IAM role" in Amazon Managed Grafana), created or updated.
# 2. The folder FOLDER_UID, created if missing.
# 3. Every DASHBOARDS_DIR/*.json posted to /api/dashboards/db with overwrite (its `id`
#    cleared: ids are per Grafana instance; the `uid` in the file identifies it).
#
# Needs curl and jq. The token is passed to curl in a header file, never on a command line.
# Dashboards removed from the directory are not deleted from Grafana.
set -eu

: "${GRAFANA_URL:?GRAFANA_URL is not set}"
: "${GRAFANA_TOKEN:?GRAFANA_TOKEN is not set}"
: "${PROMETHEUS_URL:?PROMETHEUS_URL is not set}"
: "${PROMETHEUS_REGION:?PROMETHEUS_REGION is not set}"
: "${DASHBOARDS_DIR:?DASHBOARDS_DIR is not set}"
FOLDER_UID=${FOLDER_UID:-accessflow}
FOLDER_TITLE=${FOLDER_TITLE:-Accessflow}
GRAFANA_URL=${GRAFANA_URL%/}

for tool in curl jq; do
    command -v "$tool" >/dev/null 2>&1 || { echo "upload-dashboards.sh: $tool is needed" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
umask 077
printf 'Authorization: Bearer %s\n' "$GRAFANA_TOKEN" >"$work/auth"

# api METHOD PATH [BODY_FILE]: the response body on stdout; the HTTP status in $work/status.
api() {
    if [ $# -ge 3 ]; then
        curl -sS --retry 3 -o "$work/body" -w '%{http_code}' -X "$1" -H @"$work/auth" \
            -H 'Content-Type: application/json' --data-binary @"$3" "$GRAFANA_URL$2" >"$work/status"
    else
        curl -sS --retry 3 -o "$work/body" -w '%{http_code}' -X "$1" -H @"$work/auth" \
            "$GRAFANA_URL$2" >"$work/status"
    fi
    cat "$work/body"
}

status() { cat "$work/status"; }

fail() {
    echo "upload-dashboards.sh: $1 (HTTP $(status)): $(cat "$work/body")" >&2
    exit 1
}

# 1. The data source.
jq -n --arg url "${PROMETHEUS_URL%/}" --arg region "$PROMETHEUS_REGION" '{
    uid: "prometheus",
    name: "Amazon Managed Service for Prometheus",
    type: "prometheus",
    access: "proxy",
    url: $url,
    isDefault: true,
    jsonData: {
        httpMethod: "POST",
        sigV4Auth: true,
        sigV4AuthType: "ec2_iam_role",
        sigV4Region: $region,
        timeInterval: "30s"
    }
}' >"$work/datasource.json"
existing=$(api GET /api/datasources/uid/prometheus)
case $(status) in
200)
    id=$(printf '%s' "$existing" | jq -r .id)
    api PUT "/api/datasources/$id" "$work/datasource.json" >/dev/null
    [ "$(status)" = 200 ] || fail "updating the data source"
    echo "upload-dashboards.sh: data source prometheus updated"
    ;;
404)
    api POST /api/datasources "$work/datasource.json" >/dev/null
    [ "$(status)" = 200 ] || fail "creating the data source"
    echo "upload-dashboards.sh: data source prometheus created"
    ;;
*) fail "reading the data source" ;;
esac

# 2. The folder.
api GET "/api/folders/$FOLDER_UID" >/dev/null
case $(status) in
200) ;;
404)
    jq -n --arg uid "$FOLDER_UID" --arg title "$FOLDER_TITLE" '{uid: $uid, title: $title}' >"$work/folder.json"
    api POST /api/folders "$work/folder.json" >/dev/null
    [ "$(status)" = 200 ] || fail "creating the folder $FOLDER_UID"
    ;;
*) fail "reading the folder $FOLDER_UID" ;;
esac

# 3. The dashboards.
count=0
for file in "$DASHBOARDS_DIR"/*.json; do
    [ -f "$file" ] || continue
    jq --arg folder "$FOLDER_UID" \
        '{dashboard: (.id = null), folderUid: $folder, overwrite: true, message: "uploaded by terraform/modules/monitoring"}' \
        "$file" >"$work/dashboard.json" || { echo "upload-dashboards.sh: $file is not JSON" >&2; exit 1; }
    api POST /api/dashboards/db "$work/dashboard.json" >/dev/null
    [ "$(status)" = 200 ] || fail "uploading $file"
    echo "upload-dashboards.sh: $(basename "$file") -> $GRAFANA_URL$(jq -r .url "$work/body")"
    count=$((count + 1))
done
[ "$count" -gt 0 ] || { echo "upload-dashboards.sh: no *.json in $DASHBOARDS_DIR" >&2; exit 1; }
echo "upload-dashboards.sh: $count dashboards uploaded"
