"""moto's server for Accessflow's tests: `python moto_server.py PORT [HOST]`.

Listens on HOST:PORT (127.0.0.1 by default) and exits as soon as its stdin reaches end of file, so it
dies with the process that started it (keep stdin open: a pipe). Patches moto 5.x where
its threaded server breaks guarantees that AWS gives and the tests rely on (see below).
"""
import os, sys, threading
def watch():
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)
threading.Thread(target=watch, daemon=True).start()
# moto's DynamoDB is not atomic under concurrent requests (the threaded server interleaves
# an UpdateItem's read and write: concurrent ADDs get lost). DynamoDB makes every single
# request atomic, so serialise DynamoDB requests here; it has no long polling to block.
from moto.dynamodb.responses import DynamoHandler
_ddb_lock = threading.Lock()
_ddb_call = DynamoHandler.call_action
def _serialised(self, *args, **kwargs):
    with _ddb_lock:
        return _ddb_call(self, *args, **kwargs)
DynamoHandler.call_action = _serialised
# moto's SQS receive is not atomic either: concurrent receives take their snapshot of the
# groups in flight without a lock, so two consumers can get messages of one FIFO group at
# once, or the same message twice (and a long poll keeps a stale snapshot across its
# waits); and a group whose in-flight messages all timed out is redelivered from its last
# one. Make each receive pass atomic with a fresh snapshot, and serialise what changes
# the in-flight set; long polls wait outside the lock.
#
# Each pass also sees one instant: moto reads the clock for every message it looks at, so
# a message whose visibility ends between the clean-up below and moto's scan (say seq 5 of
# a group, released a millisecond after seq 4) would be found "pending but visible again"
# mid-scan, unlock its group there and be delivered ahead of seq 4, which was skipped a
# moment earlier because the group was still locked. Under the lock, moto's SQS clock is
# frozen for the pass.
import time
import moto.sqs.models as _sqs_models
from moto.sqs.models import SQSBackend
_sqs_lock = threading.RLock()
_real_time_millis = _sqs_models.unix_time_millis
_pass = threading.local()
def _time_millis(*args, **kwargs):
    frozen = getattr(_pass, "now_ms", None)
    return frozen if frozen is not None else _real_time_millis(*args, **kwargs)
_sqs_models.unix_time_millis = _time_millis
_receive = SQSBackend.receive_message
def _receive_atomic(self, queue_name, count, wait_seconds_timeout, visibility_timeout,
                    message_attribute_names=None):
    deadline = time.time() + (wait_seconds_timeout or 0)
    while True:
        with _sqs_lock:
            _pass.now_ms = _real_time_millis()
            try:
                result = _receive_pass(self, queue_name, count, visibility_timeout,
                                       message_attribute_names)
            finally:
                _pass.now_ms = None
        if result or time.time() >= deadline:
            return result
        time.sleep(0.05)
def _receive_pass(self, queue_name, count, visibility_timeout, message_attribute_names):
    # Messages whose visibility ended are no longer in flight: moto only notices
    # one when its scan reaches it, so a group with several such messages would
    # stay "in flight" until the last one and be delivered from there, out of order.
    queue = self.get_queue(queue_name)
    for message in [m for m in queue.pending_messages if m.visible]:
        queue.pending_messages.discard(message)
    return _receive(self, queue_name, count, 0, visibility_timeout,
                    message_attribute_names)
SQSBackend.receive_message = _receive_atomic
def _locked(name):
    original = getattr(SQSBackend, name)
    def call(self, *args, **kwargs):
        with _sqs_lock:
            return original(self, *args, **kwargs)
    setattr(SQSBackend, name, call)
for _name in ("delete_message", "change_message_visibility", "send_message", "purge_queue"):
    _locked(_name)
from moto.server import main
main(["-H", sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1", "-p", sys.argv[1]])
