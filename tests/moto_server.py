"""moto's standalone S3 server, as `python -m moto.server` runs it, with one lookup kept and
a count of the requests that may change a bucket.

moto 5 matches each request's Host header against the names of its own modules, and finds
them by listing its package directory and stat-ing every entry (about 170) on every request:
in a profile of 700 lists, PUTs and HEADs that was 14% of the server's samples, and reading
the list once cut the server's CPU for them from 1.62 to 1.03 CPU-s. The list cannot change
while the server runs.

`GET /__writes__` answers "<pid>:<n>": this server process and how many requests other than
GET, HEAD and OPTIONS it has received (counted as they arrive). A test's teardown empties the
bucket only when that changed since the bucket was last emptied (tests.servers.S3Server):
most tests never write, and a list and a multipart list per test cost about 6 ms of CPU.
Everything else is moto's own server.
"""

import os
import sys
import threading

from moto import backends

_MODULES = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: _MODULES

from moto import server  # noqa: E402  (after the lookup is replaced)

WRITES_PATH = "/__writes__"
_READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})


class CountsWrites:
    """WSGI middleware in front of moto's application."""

    def __init__(self, app):
        self.app = app
        self.writes = 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == WRITES_PATH:
            with self.lock:
                body = f"{os.getpid()}:{self.writes}".encode()
            start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", str(len(body)))])  # fmt: skip
            return [body]
        if environ.get("REQUEST_METHOD") not in _READ_ONLY:
            with self.lock:
                self.writes += 1
        return self.app(environ, start_response)


_run_simple = server.run_simple
server.run_simple = lambda host, port, app, **options: _run_simple(
    host, port, CountsWrites(app), **options
)

if __name__ == "__main__":
    server.main(sys.argv[1:])
