"""Studio pages for topics and their videos (thin: selectors and cards read, services write).

Every write needs the same model permission as in the admin; a user without it gets 403 and
no row, and the pages hide the buttons they may not use.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from avatars import services as generation
from avatars.errors import GENERATION_ERRORS, AlreadyQueued
from avatars.selectors import topic_videos_page
from studio.cards import video_card, video_cards
from studio.permissions import (
    ADD_TOPIC,
    CHANGE_TOPIC,
    DELETE_VIDEO,
    GENERATE,
    REGENERATE,
    VIEW_VIDEOS,
)
from topics import selectors, services
from topics.forms import GenerateAvatarVideoForm, TopicForm
from topics.models import ContentItem, Topic


@require_GET
def favicon(request):
    return redirect(static("studio/favicon.svg"), permanent=True)


@login_required
def topic_list(request):
    query = request.GET.get("q", "").strip()
    topics = Paginator(selectors.topic_list(query=query), selectors.TOPICS_PER_PAGE)
    page = topics.get_page(request.GET.get("page"))
    return render(request, "studio/topic_list.html", {"page": page, "query": query})


def _topic_form_page(request, form: TopicForm, topic: Topic | None, status: int = 200):
    return render(request, "studio/topic_form.html", {"form": form, "topic": topic},
                  status=status)  # fmt: skip


def _save_topic(request, topic: Topic | None):
    form = TopicForm(request.POST)
    if form.is_valid():
        try:
            if topic is None:
                topic = services.create_topic(**form.cleaned_data)
                messages.success(request, f"Topic “{topic.title}” created.")
            else:
                services.update_topic(topic=topic, **form.cleaned_data)
                messages.success(request, "Topic saved.")
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("studio:topic-detail", topic_id=topic.pk)
    return _topic_form_page(request, form, topic, status=400)


@login_required
@permission_required(ADD_TOPIC, raise_exception=True)
@require_http_methods(["GET", "POST"])
def topic_create(request):
    if request.method == "POST":
        return _save_topic(request, None)
    return _topic_form_page(request, TopicForm(), None)


@login_required
@permission_required(CHANGE_TOPIC, raise_exception=True)
@require_http_methods(["GET", "POST"])
def topic_edit(request, topic_id: int):
    topic = get_object_or_404(Topic, pk=topic_id)
    if request.method == "POST":
        return _save_topic(request, topic)
    fields = {"title": topic.title, "language": topic.language, "description": topic.description}
    return _topic_form_page(request, TopicForm(initial=fields), topic)


def _render_topic(request, topic: Topic, form: GenerateAvatarVideoForm, status: int = 200):
    context = {"topic": topic, "form": form, "page": None, "cards": []}
    if request.user.has_perm(VIEW_VIDEOS):
        page = topic_videos_page(topic, request.GET.get("page"))
        context.update(page=page, cards=video_cards(page))
    return render(request, "studio/topic_detail.html", context, status=status)


@login_required
@require_GET
def topic_detail(request, topic_id: int):
    topic = get_object_or_404(Topic, pk=topic_id)
    form = GenerateAvatarVideoForm(initial={"language": topic.language})
    return _render_topic(request, topic, form)


@login_required
@require_http_methods(["GET", "POST"])
def generate_video(request, topic_id: int):
    topic = get_object_or_404(Topic, pk=topic_id)
    if request.method == "GET":  # e.g. reloading the page a form error left in the address bar
        return redirect("studio:topic-detail", topic_id=topic.pk)
    if not request.user.has_perm(GENERATE):
        raise PermissionDenied
    form = GenerateAvatarVideoForm(request.POST, request.FILES)
    if form.is_valid():
        data = form.cleaned_data
        try:
            jobs = generation.generate_videos(topic=topic, scripts=data["scripts"],
                                          language=data["language"], avatar_id=data["avatar_id"],
                                          voice_id=data["voice_id"],
                                          request_token=data["request_token"])  # fmt: skip
        except AlreadyQueued as repeat:  # the same form posted again: show the first result
            ids = ", ".join(str(job.pk) for job in repeat.jobs)
            messages.info(request, f"{repeat} Nothing new was queued" +
                          (f" (job {ids})." if ids else "."))  # fmt: skip
            return redirect("studio:topic-detail", topic_id=topic.pk)
        except GENERATION_ERRORS as error:
            form.add_error("script", str(error))
        else:
            ids = ", ".join(str(job.pk) for job in jobs)
            noun = "Video generation" if len(jobs) == 1 else f"{len(jobs)} videos"
            messages.success(request, f"{noun} queued (job {ids}).")
            return redirect("studio:topic-detail", topic_id=topic.pk)
    return _render_topic(request, topic, form, status=400)


def _video(topic_id: int, item_id: int) -> ContentItem:
    return get_object_or_404(
        ContentItem.objects.select_related("topic"),
        pk=item_id,
        topic_id=topic_id,
        content_type=ContentItem.ContentType.AVATAR_VIDEO,
    )


def _back_to(item: ContentItem) -> str:
    return reverse("studio:topic-detail", args=[item.topic_id]) + f"#item-{item.pk}"


@login_required
@permission_required(REGENERATE, raise_exception=True)
@require_http_methods(["GET", "POST"])
def regenerate_video(request, topic_id: int, item_id: int):
    item = _video(topic_id, item_id)
    if request.method == "GET":
        return render(request, "studio/confirm_regenerate.html", {"card": video_card(item)})
    try:
        job = generation.regenerate_video(content_item=item)
    except GENERATION_ERRORS as error:
        messages.error(request, f"Video #{item.pk} was not regenerated: {error}")
    else:
        messages.success(request, f"Regeneration queued (job {job.pk}); the current video "
                                  "stays until the new one is stored.")  # fmt: skip
    return redirect(_back_to(item))


@login_required
@permission_required(DELETE_VIDEO, raise_exception=True)
@require_http_methods(["GET", "POST"])
def delete_video(request, topic_id: int, item_id: int):
    item = _video(topic_id, item_id)
    if request.method == "GET":
        return render(request, "studio/confirm_delete.html", {"card": video_card(item)})
    label = str(item)
    services.delete_content_item(content_item=item)
    messages.success(request, f"{label} deleted; its file is removed from storage.")
    return redirect("studio:topic-detail", topic_id=topic_id)


@login_required
@permission_required(VIEW_VIDEOS, raise_exception=True)
@require_GET
def video_card_fragment(request, topic_id: int, item_id: int):
    """One video's card, for the page to swap in place when its job ends."""
    card = video_card(_video(topic_id, item_id))
    return render(request, "studio/_video_card.html", {"card": card, "topic": card.item.topic})
