"""Faults where two writers race for one content item: a delete racing a copy (both orders),
a promotion racing a regenerate, a regenerate during a storage outage that ends before the
promotion runs. Each also checks the item it leaves behind (a finding otherwise).
"""

import random
import threading
import time

from django.db import connection

from avatars import promotion, services
from avatars.models import VideoJob
from benchmarks.chaos_faults import Fault, _post, job_state, join, new_job, stored_item, wait_for
from benchmarks.chaos_world import World
from topics.models import ContentItem
from topics.objects import stored_objects
from topics.services import content_item_delete
from videostore import ledger

State = VideoJob.State
Status = ContentItem.Status


def slow_copies(world: World) -> None:
    """4 MiB served over about 2.5 s (pauses of 0.5 s, under the client's 1 s timeout)."""
    world.fake.set_fault("serve_file", str(world.medium_video))
    world.fake.set_fault("slow_download", 2.5)


def delete_during_copy(world: World, rng: random.Random) -> list[int]:
    """While the video is copied into storage, its item is deleted: through the studio's
    delete view while the copy runs, or (the other order) with the row read before the copy
    committed, after it committed. No object may stay behind, not even for the sweep."""
    slow_copies(world)
    job = new_job(world)
    read_before = ContentItem.objects.get(pk=job.content_item_id)
    threads = world.drive([job.pk])
    if not wait_for(VideoJob.objects.filter(pk=job.pk, state=State.UPLOADING).exists, 60):
        world.findings.append(f"job {job.pk}: never uploading")
    if rng.random() < 0.5:
        time.sleep(rng.uniform(0.0, 2.0))
        state = job_state(job.pk)
        path = f"/topics/{read_before.topic_id}/videos/{read_before.pk}/delete/"
        response = _post(path, user=world.user)
        world.notes.append(f"studio delete during {state or 'the end'}: {response.status_code}")
        if response.status_code >= 500:
            world.findings.append(f"item {read_before.pk}: the delete view answered 500")
        join(threads)
    else:
        join(threads)
        deleted = content_item_delete(content_item=read_before)
        world.notes.append(f"delete after the copy committed ({job_state(job.pk) or 'gone'}), "
                           f"with the row read before: {deleted}")  # fmt: skip
    ledger.retry_pending_deletes()
    if ContentItem.objects.filter(pk=read_before.pk).exists():
        world.findings.append(f"item {read_before.pk} still exists after its delete")
    if left := world.bucket():
        world.findings.append(f"objects left after the delete, before the sweep: {sorted(left)}")
    return [job.pk]


def _fallback_item(world: World) -> tuple[VideoJob, ContentItem]:
    """A first generation while storage is down: the item waits for storage (fallback)."""
    world.link.cut()
    try:
        first = new_job(world)
        join(world.drive([first.pk]))
    finally:
        world.link.restore()
    return first, ContentItem.objects.get(pk=first.content_item_id)


def promotion_races_regenerate(world: World, rng: random.Random) -> list[int]:
    """An item waits for storage (its first render fell back); the scheduled promotion
    (`promote_fallbacks`) and a regenerate of the item run at once, the promotion starting
    0 to 1.5 s later; both copies take about 2.5 s. One of them wins, the other's upload is
    discarded; the item ends ready with one stored object."""
    first, item = _fallback_item(world)
    if item.status != Status.NEEDS_STORAGE:
        world.findings.append(f"item {item.pk}: {item.status} after a fallback, not waiting")
        return [first.pk]
    slow_copies(world)
    regenerated: list[int] = []
    answers: dict[str, object] = {}
    delay = rng.uniform(0.0, 1.5)

    def promote() -> None:
        time.sleep(delay)
        try:
            answers["promotion"] = promotion.promote_fallbacks()
        finally:
            connection.close()

    def regenerate() -> None:
        try:
            regenerated.append(services.avatar_video_regenerate(content_item=item).pk)
        finally:
            connection.close()
        join(world.drive(regenerated))

    threads = [threading.Thread(target=promote), threading.Thread(target=regenerate)]
    for thread in threads:
        thread.start()
    join(threads)
    ledger.retry_pending_deletes()
    item.refresh_from_db()
    world.notes.append(f"promotion {answers.get('promotion')} after {delay:.1f} s; item "
                       f"{item.status}")  # fmt: skip
    if item.status != Status.READY or item.storage_path not in world.bucket():
        world.findings.append(f"item {item.pk}: {item.status}, {item.storage_path!r} not stored")
    return [first.pk, *regenerated]


def regenerate_during_outage(world: World, rng: random.Random) -> list[int]:
    """A stored item is regenerated while storage is down (from the request on, or from when
    the render finished): it falls back, keeps playing its stored video and keeps the new
    render's link. Then storage comes back and the promotion stores the new render."""
    first, item = stored_item(world)
    old_path = item.storage_path
    at_once = rng.random() < 0.5
    if at_once:
        world.link.cut()
    job = services.avatar_video_regenerate(content_item=item)
    threads = world.drive([job.pk])
    if not at_once:
        wait_for(lambda: job_state(job.pk) != State.QUEUED and job_state(job.pk) != State.RENDERING,
                 60, 0.01)  # fmt: skip
        world.link.cut()
    join(threads)
    item.refresh_from_db()
    outcome = job_state(job.pk)
    world.notes.append(f"outage {'from the request' if at_once else 'from the copy'}: {outcome}")
    if outcome == State.FALLBACK and (
        item.status != Status.NEEDS_STORAGE or item.storage_path != old_path
    ):
        world.findings.append(f"item {item.pk}: {item.status} {item.storage_path!r} during the "
                              "outage, not its stored video waiting for storage")  # fmt: skip
    world.link.restore()
    counts = promotion.promote_fallbacks()
    ledger.retry_pending_deletes()
    item.refresh_from_db()
    new_render = VideoJob.objects.get(pk=job.pk).provider_video_id
    world.notes.append(f"promotion {counts}")
    if item.status != Status.READY or item.content_data.get("videoId") != new_render:
        world.findings.append(f"item {item.pk}: {item.status}, not the new render {new_render}")
    if item.storage_path == old_path or world.bucket().keys() != {
        stored.storage_path for stored in stored_objects(item)
    }:
        world.findings.append(f"item {item.pk}: bucket {sorted(world.bucket())}, item "
                              f"{item.storage_path!r} (old {old_path!r})")  # fmt: skip
    return [first.pk, job.pk]


FAULTS = [
    Fault("delete during a copy", delete_during_copy),
    Fault("promotion racing a regenerate", promotion_races_regenerate),
    Fault("regenerate during a storage outage", regenerate_during_outage),
]
