"""moto's standalone S3 server, as `python -m moto.server` runs it, with one lookup kept.

moto 5 matches each request's Host header against the names of its own modules, and finds
them by listing its package directory and stat-ing every entry (about 170) on every request:
in a profile of 700 lists, PUTs and HEADs that was 14% of the server's samples, and reading
the list once cut the server's CPU for them from 1.62 to 1.03 CPU-s. The list cannot change
while the server runs. Everything else is moto's own server.
"""

import sys

from moto import backends

_MODULES = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: _MODULES

from moto.server import main  # noqa: E402  (after the lookup is replaced)

if __name__ == "__main__":
    main(sys.argv[1:])
