"""Run the fake HeyGen server in the foreground (demos; tests start it themselves)."""

import time

from django.core.management.base import BaseCommand

from devtools.fake_heygen import FakeHeyGenServer


class Command(BaseCommand):
    help = "Serve a fake HeyGen API on loopback that renders real MP4s offline."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8123)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--api-key", default="fake-heygen-key")
        parser.add_argument("--polls-per-step", type=int, default=1)
        parser.add_argument(
            "--render-seconds", type=float, default=0,
            help="renders complete this many seconds after creation (0: by polls)",
        )  # fmt: skip
        parser.add_argument(
            "--max-concurrent", type=int, default=0, help="concurrent render cap (429 above)"
        )

    def handle(self, *args, **options):
        server = FakeHeyGenServer(
            host=options["host"],
            port=options["port"],
            api_key=options["api_key"],
            polls_per_step=options["polls_per_step"],
            render_seconds=options["render_seconds"],
            max_concurrent=options["max_concurrent"],
        ).start()
        self.stdout.write(
            f"Fake HeyGen on {server.base_url} (key {options['api_key']!r}).\n"
            f"  export HEYGEN_API_BASE={server.base_url} HEYGEN_API_KEY={options['api_key']}\n"
            f"  export AVATAR_DOWNLOAD_ALLOWED_HOSTS={server.host_port}\n"
            'Faults: POST /_fake/faults with JSON, e.g. {"render_failed": true}.'
        )
        self.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            server.stop()
