"""Copy legacy avatar videos (provider URL only, no storage metadata) into storage."""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from avatars.errors import GENERATION_ERRORS
from avatars.promotion import copy_provider_video_to_storage, legacy_items
from avatars.providers import get_provider
from avatars.providers.download import HttpVideoDownload, open_video_download, redact


class ProviderLinkDownloads:
    """Legacy rows hold provider links (https): fetched through the download guard (allowed
    hosts only), whichever provider renders new videos here."""

    name = "link"

    def open_download(self, video_url: str) -> HttpVideoDownload:
        return open_video_download(video_url)


def downloader_for(video_url: str):
    if video_url.startswith(("http://", "https://")):
        return ProviderLinkDownloads()
    return get_provider()  # e.g. file:// renders of the offline provider


class Command(BaseCommand):
    help = "Copy legacy rows that hold only a provider videoUrl into storage, with progress."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="stop after N rows")
        parser.add_argument("--dry-run", action="store_true", help="only count the rows")

    def handle(self, *args, **options):
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be 1 or more.", returncode=2)
        items = legacy_items()
        total = items.count() if options["limit"] is None else min(items.count(), options["limit"])
        if options["dry_run"]:
            self.stdout.write(f"{total} legacy avatar video row(s) to copy.")
            return
        copied, failed = 0, []
        progress = tqdm(total=total, unit="video", file=sys.stderr, disable=total == 0)
        for item in items.iterator(chunk_size=100):
            if copied + len(failed) >= total:
                break
            video_url = item.content_data["videoUrl"]
            try:
                copy_provider_video_to_storage(
                    content_item=item, video_url=video_url, provider=downloader_for(video_url)
                )
                copied += 1
            except GENERATION_ERRORS as error:
                failed.append((item.pk, redact(video_url), str(error)))
            progress.update(1)
        progress.close()
        for item_id, link, reason in failed:
            self.stderr.write(f"item {item_id} ({link}): {reason}")
        self.stdout.write(f"copied {copied} of {total}; {len(failed)} could not be copied.")
        if failed:
            self.stdout.write(
                "A host that is not allowed can be added to AVATAR_DOWNLOAD_ALLOWED_HOSTS; an "
                "expired link cannot be copied: regenerate those videos in the studio."
            )
            raise CommandError(f"{len(failed)} row(s) could not be copied.", returncode=1)
