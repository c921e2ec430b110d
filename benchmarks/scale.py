"""Scale probes, each in a fresh process: pages at N items, reconcile over N objects.

python -m benchmarks.scale pages N | populate N | reconcile | listing
"""

import json
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.probe import rss_mib


def _setup_db() -> None:
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)


def pages(count: int) -> dict:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tests.builders import stored_video_data
    from topics.models import ContentItem, Topic

    _setup_db()
    topic = Topic.objects.create(title="Bench", language="en")
    ContentItem.objects.bulk_create(
        ContentItem(topic=topic, content_type="avatar_video", status="ready",
                    storage_path=f"avatar_videos/avatar_{n:06d}.mp4",
                    content_data=stored_video_data(f"avatar_videos/avatar_{n:06d}.mp4", 100))
        for n in range(count)
    )  # fmt: skip
    user = User.objects.create_superuser("bench", "b@example.com", "pw")
    client = Client()
    client.force_login(user)
    results = {}
    for name, url in (("topic page", f"/topics/{topic.pk}/"),
                      ("admin changelist", "/admin/topics/contentitem/")):  # fmt: skip
        client.get(url)  # warm
        timings = []
        for _ in range(21):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                assert client.get(url).status_code == 200
                timings.append(time.perf_counter() - started)
        results[name] = {"queries": len(queries), "seconds": statistics.median(timings)}
    return results


def populate(count: int) -> dict:
    from django.conf import settings

    from tests.builders import stored_video_data
    from topics.models import ContentItem, Topic
    from videostore.storage import VideoStorage

    _setup_db()
    storage = VideoStorage().storage
    client = storage.connection.meta.client
    bucket = settings.STORAGES["default"]["OPTIONS"]["bucket_name"]
    keys = [f"avatar_videos/avatar_{n:07d}.mp4" for n in range(count)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b"v" * 64), keys))
    topic = Topic.objects.create(title="Bench", language="en")
    for start in range(0, count, 5000):
        ContentItem.objects.bulk_create(
            ContentItem(topic=topic, content_type="avatar_video", status="ready",
                        storage_path=key, content_data=stored_video_data(key, 64))
            for key in keys[start : start + 5000]
        )  # fmt: skip
    return {"objects": count}


def reconcile() -> dict:
    from topics.reconcile import reconcile_storage

    before = rss_mib()
    started = time.perf_counter()
    report = reconcile_storage(grace_seconds=0)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rss_growth_mib": peak - before, "peak_rss_mib": peak,
            "consistent": report.consistent, "objects": report.objects_listed}  # fmt: skip


def listing() -> dict:
    from django.conf import settings

    from videostore.storage import VideoStorage

    client = VideoStorage().storage.connection.meta.client
    bucket = settings.STORAGES["default"]["OPTIONS"]["bucket_name"]
    started = time.perf_counter()
    count = 0
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="avatar_videos/")
    for page in pages:
        count += len(page.get("Contents", []))
    return {"seconds": time.perf_counter() - started, "objects": count}


def main() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    mode = sys.argv[1]
    if mode == "pages":
        result = pages(int(sys.argv[2]))
    elif mode == "populate":
        result = populate(int(sys.argv[2]))
    else:
        result = {"reconcile": reconcile, "listing": listing}[mode]()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
