#!/bin/sh
# The local AWS-mode stack of deploy/compose.yaml in one command: builds the images (with
# BuildKit), starts moto, seeds the demo customer's accounts, provisions the table and the
# bucket, runs one night with $WORKERS worker containers (3), waits for it and shows how it
# went. The stack stays up (moto on 127.0.0.1:${MOTO_PORT:-5000}) until `deploy/demo.sh down`.
#
#   deploy/demo.sh            # ACCESSFLOW_BINARIES=prebuilt to use target/release's binaries
#   deploy/demo.sh down       # remove containers, network and volumes
#
# Exit status: the coordinator's (0: every account complete; see the README's exit codes).
set -eu
cd "$(dirname "$0")"
if command -v docker-compose >/dev/null 2>&1; then
    compose() { docker-compose -f compose.yaml "$@"; }
else
    compose() { docker compose -f compose.yaml "$@"; }
fi
if [ "${1:-}" = down ]; then
    compose down -v --remove-orphans
    exit 0
fi
export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1
compose build
compose up -d --scale worker="${WORKERS:-3}"
coordinator=$(compose ps -q coordinator)
code=$(docker wait "$coordinator")
compose logs --no-color coordinator | tail -n 20
echo "demo: the night ended with status $code; reports: s3://accessflow-demo/demo/reports/ in moto"
echo "demo: (http://127.0.0.1:${MOTO_PORT:-5000}/moto-api/); 'deploy/demo.sh down' removes the stack"
exit "$code"
