"""One measured run in a fresh process; prints JSON {seconds, rss_growth_mib}.

python -m benchmarks.probe <mode> <arg>   modes: pipeline URL | original URL | plain_upload FILE
"""

import json
import resource
import sys
import time


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    import django

    django.setup()
    import boto3  # noqa: F401  (import cost outside the measurement)
    import requests
    from django.conf import settings

    from avatars.providers.download import open_video_download
    from contentstudio.storage import supabase_client_config, supabase_transfer_config
    from videostore.storage import VideoStorage

    mode, arg = sys.argv[1], sys.argv[2]
    options = settings.STORAGES["default"]["OPTIONS"]
    client = boto3.client(
        "s3", endpoint_url=options["endpoint_url"], region_name=options["region_name"],
        aws_access_key_id=options["access_key"], aws_secret_access_key=options["secret_key"],
        config=supabase_client_config(),
    )  # fmt: skip
    storage = VideoStorage()
    _ = storage.storage.connection  # connect before measuring
    before = rss_mib()
    started = time.perf_counter()
    if mode == "pipeline":
        download = open_video_download(arg)
        stored = storage.upload_video(
            download.iter_chunks(), "bench.mp4", expected_size=download.content_length
        )
        download.close()
        key = stored.storage_path
    elif mode == "original":  # the Node.js design: whole body in memory, one put
        body = requests.get(arg, timeout=600).content
        key = "avatar_videos/original.mp4"
        client.put_object(Bucket=options["bucket_name"], Key=key, Body=body)
    elif mode == "plain_upload":
        key = "avatar_videos/plain.mp4"
        client.upload_file(arg, options["bucket_name"], key, Config=supabase_transfer_config())
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Unmeasured: the S3 server keeps objects in memory; each run starts it equally loaded.
    client.delete_object(Bucket=options["bucket_name"], Key=key)
    print(json.dumps({"seconds": seconds, "rss_growth_mib": peak - before}))


if __name__ == "__main__":
    main()
