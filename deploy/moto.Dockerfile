# moto (the AWS emulator) in server mode, for the local AWS-mode stack (deploy/compose.yaml)
# and for trying the AWS backend without an AWS account.
#
#   docker build -f deploy/moto.Dockerfile -t accessflow-moto .   (from the repository root)
#
# It runs moto through the test harness's launcher (testkit/src/moto_server.py), which
# patches moto 5's threaded server to make each DynamoDB request and each SQS receive
# atomic, as they are on AWS: without it, concurrent workers lose counter updates and can
# get two messages of one FIFO group at once. The moto version is the one the test harness
# installs (testkit/src/moto.rs).
FROM python:3.11-slim

ARG MOTO_VERSION=5.*
# A virtualenv: works on the official image and on a Debian python3 (PEP 668 forbids
# system-wide pip installs there, and it has no pip module outside a venv).
RUN python3 -m venv /opt/moto \
    && /opt/moto/bin/pip install --no-cache-dir --disable-pip-version-check \
        "moto[server]==${MOTO_VERSION}"
COPY testkit/src/moto_server.py /opt/moto/moto_server.py

# AWS managed policies (AdministratorAccess, ...) exist in IAM, as on AWS.
ENV MOTO_IAM_LOAD_MANAGED_POLICIES=true
EXPOSE 5000
# The launcher exits when its stdin ends (it is meant to die with the test that started
# it): its stdin here is a FIFO opened read-write, which never ends. moto's own SIGTERM
# handler exits through the interpreter's shutdown, which aborts while the launcher's
# stdin thread is reading: `docker stop` ends it with os._exit(0) instead.
CMD ["sh", "-c", "rm -f /tmp/stdin && mkfifo /tmp/stdin && exec /opt/moto/bin/python -c 'import os, runpy, sys, moto.server; moto.server.signal_handler = lambda *_: os._exit(0); sys.argv = [\"moto_server.py\", \"5000\", \"0.0.0.0\"]; runpy.run_path(\"/opt/moto/moto_server.py\", run_name=\"__main__\")' 0<>/tmp/stdin"]
HEALTHCHECK --interval=2s --timeout=5s --start-period=30s --retries=5 \
    CMD ["/opt/moto/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/moto-api/', timeout=4)"]
