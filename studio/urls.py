"""The studio's routes: topic pages, video actions and live progress (namespace `studio`)."""

from django.urls import path

from studio import progress, views

app_name = "studio"

urlpatterns = [
    path("", views.topic_list, name="topic-list"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("topics/new/", views.topic_create, name="topic-create"),
    path("topics/<int:topic_id>/", views.topic_detail, name="topic-detail"),
    path("topics/<int:topic_id>/edit/", views.topic_edit, name="topic-edit"),
    path("topics/<int:topic_id>/delete/", views.topic_delete, name="topic-delete"),
    path("topics/<int:topic_id>/batch/", views.batch_progress, name="batch-progress"),
    path("topics/<int:topic_id>/videos/", views.generate_video, name="generate-video"),
    path(
        "topics/<int:topic_id>/videos/confirm/",
        views.confirm_generate,
        name="confirm-generate",
    ),  # fmt: skip
    path(
        "topics/<int:topic_id>/videos/<int:item_id>/card/",
        views.video_card_fragment,
        name="video-card",
    ),  # fmt: skip
    path(
        "topics/<int:topic_id>/videos/<int:item_id>/regenerate/",
        views.regenerate_video,
        name="regenerate-video",
    ),  # fmt: skip
    path(
        "topics/<int:topic_id>/videos/<int:item_id>/cancel/",
        views.cancel_video,
        name="cancel-video",
    ),  # fmt: skip
    path(
        "topics/<int:topic_id>/videos/<int:item_id>/delete/",
        views.delete_video,
        name="delete-video",
    ),  # fmt: skip
    path(
        "topics/<int:topic_id>/videos/<int:item_id>/rename/",
        views.rename_video,
        name="rename-video",
    ),  # fmt: skip
    path(
        "topics/<int:topic_id>/videos/<int:item_id>/move/",
        views.move_video,
        name="move-video",
    ),  # fmt: skip
    path(
        "topics/<int:topic_id>/videos/<int:item_id>/download/",
        views.download_video,
        name="download-video",
    ),  # fmt: skip
    path(
        "topics/<int:topic_id>/videos/<int:item_id>/captions.vtt",
        views.video_captions,
        name="video-captions",
    ),  # fmt: skip
    path("avatars/jobs/progress", progress.jobs_progress, name="jobs-progress"),
    path("avatars/jobs/<int:job_id>/progress", progress.job_progress, name="job-progress"),
]
