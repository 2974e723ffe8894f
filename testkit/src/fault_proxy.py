"""A fault-injecting HTTP proxy in front of moto: `python fault_proxy.py PORT UPSTREAM RATE SEED [DENY] [HOLD]`.

Forwards every request to UPSTREAM (moto's URL) unchanged, except a fraction RATE of them,
chosen by a seeded random generator, which get an error instead, half of them throttling
and half a 5xx, each in the format of the service the request was signed for (read from
the SigV4 credential scope): JSON for DynamoDB, SQS, KMS, Secrets Manager, Lambda and ECR,
XML for SNS, IAM, STS and S3 (S3 Control signs as S3). With DENY (a regular expression), every request whose "METHOD PATH?QUERY", then its
X-Amz-Target header, then its body (one per line) match it is answered with the service's
access-denied error, as AWS answers a caller its policies do not allow (moto enforces no
IAM). With HOLD (a regular expression over the same text), a matching request is never
answered nor forwarded: the caller hangs in the middle of that call, which lets a test kill
a process at an exact point of its work. The injected faults are counted per service and
kind (`throttle`, `5xx`, `denied`, `held`);
`GET /__faults` (not proxied) returns the counts as JSON. Exits when its stdin reaches end of file, like moto_server.py.
"""
import http.client
import json
import os
import random
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, UPSTREAM, RATE, SEED = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
DENY = re.compile(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] else None
HOLD = re.compile(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[6] else None
UP = urllib.parse.urlparse(UPSTREAM)
LOCK = threading.Lock()
RNG = random.Random(SEED)
COUNTS = {}


def watch():
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)


threading.Thread(target=watch, daemon=True).start()

JSON_SERVICES = {"dynamodb", "sqs", "kms", "secretsmanager", "lambda", "ecr"}
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate"}


def service_of(headers):
    m = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", headers.get("Authorization", ""))
    return m.group(1) if m else "unknown"


def fault(service, kind):
    """(status, content type, body) of an injected error."""
    if service in JSON_SERVICES:
        if kind == "throttle":
            name = {"dynamodb": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                    "sqs": "com.amazonaws.sqs#ThrottlingException",
                    "kms": "ThrottlingException",
                    "secretsmanager": "ThrottlingException",
                    "lambda": "TooManyRequestsException",
                    "ecr": "ThrottlingException"}[service]
            status = 429 if service == "lambda" else 400
            return status, "application/x-amz-json-1.0", json.dumps(
                {"__type": name, "message": "Rate exceeded (injected)"})
        return 503, "application/x-amz-json-1.0", json.dumps(
            {"__type": "ServiceUnavailable", "message": "injected 5xx"})
    if service == "s3":
        code = "SlowDown" if kind == "throttle" else "InternalError"
        status = 503 if kind == "throttle" else 500
        return status, "application/xml", (
            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
            f"<Message>injected</Message><RequestId>f</RequestId></Error>")
    code, status = ("Throttling", 400) if kind == "throttle" else ("ServiceUnavailable", 503)
    return status, "text/xml", (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
        f"<Message>injected</Message></Error><RequestId>f</RequestId></ErrorResponse>")


def denied(service):
    """(status, content type, body, error-type header) of an access-denied answer."""
    if service == "s3":
        return 403, "application/xml", (
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
            "<Message>Access Denied (injected)</Message><RequestId>f</RequestId></Error>"), None
    if service in ("sns", "iam", "sts"):
        code = "AuthorizationError" if service == "sns" else "AccessDenied"
        return 403, "text/xml", (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            "<Message>not authorized (injected)</Message></Error><RequestId>f</RequestId>"
            "</ErrorResponse>"), None
    # JSON and REST-JSON services (DynamoDB, SQS, KMS, Secrets Manager, Lambda, ECR, ...)
    return 403, "application/x-amz-json-1.1", json.dumps(
        {"__type": "AccessDeniedException", "message": "not authorized (injected)"}), \
        "AccessDeniedException"


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/__faults":
            out = json.dumps(COUNTS).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        service = service_of(self.headers)
        seen = "\n".join([f"{self.command} {self.path}",
                          self.headers.get("X-Amz-Target", ""),
                          body.decode("utf-8", "replace")]) if DENY or HOLD else ""
        if HOLD is not None and service != "unknown" and HOLD.search(seen):
            with LOCK:
                key = f"{service}:held"
                COUNTS[key] = COUNTS.get(key, 0) + 1
            # Never forwarded, never answered: the thread waits until the proxy exits.
            threading.Event().wait()
        if DENY is not None and service != "unknown":
            if DENY.search(seen):
                with LOCK:
                    key = f"{service}:denied"
                    COUNTS[key] = COUNTS.get(key, 0) + 1
                status, ctype, text, error_type = denied(service)
                out = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if error_type:
                    self.send_header("x-amzn-ErrorType", error_type)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                return
        with LOCK:
            draw = RNG.random()
        # Unsigned requests (the harness's own health checks) are never faulted.
        if service != "unknown" and draw < RATE:
            kind = "throttle" if draw < RATE / 2 else "5xx"
            with LOCK:
                key = f"{service}:{kind}"
                COUNTS[key] = COUNTS.get(key, 0) + 1
            status, ctype, text = fault(service, kind)
            out = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        conn = http.client.HTTPConnection(UP.hostname, UP.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Proxy).serve_forever()
