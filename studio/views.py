"""Studio pages for topics and their videos (thin: selectors and cards read, services write).

Every write needs the same model permission as in the admin; a user without it gets 403 and
no row, and the pages hide the buttons they may not use.
"""

import logging
import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from avatars import catalog, leases
from avatars import services as generation
from avatars.errors import GENERATION_ERRORS, AlreadyQueued, ProviderError, QuotaExceeded
from avatars.models import VideoJob
from avatars.selectors import topic_videos_page
from studio.cards import batch_summary, video_card, video_cards
from studio.permissions import (
    ADD_TOPIC,
    CHANGE_TOPIC,
    CHANGE_VIDEO,
    DELETE_TOPIC,
    DELETE_VIDEO,
    GENERATE,
    REGENERATE,
    VIEW_VIDEOS,
    missing,
    require,
)
from topics import selectors, services
from topics.batches import ScriptBatch
from topics.forms import ConfirmGenerateForm, GenerateAvatarVideoForm, TopicForm, VideoTitleForm
from topics.models import ContentItem, Topic
from topics.objects import stored_objects
from topics.services import Direction
from videostore.captions import CAPTIONS_MAX_BYTES
from videostore.errors import InvalidVideo, StorageUnavailable
from videostore.storage import VideoStorage, download_file_name

logger = logging.getLogger(__name__)


@require_GET
def favicon(request):
    return redirect(static("studio/favicon.svg"), permanent=True)


@login_required
def topic_list(request):
    query = request.GET.get("q", "").strip()
    topics = Paginator(selectors.topic_list(query=query), selectors.TOPICS_PER_PAGE)
    page = topics.get_page(request.GET.get("page"))
    return render(request, "studio/topic_list.html", {"page": page, "query": query})


def _pickers(language: str) -> dict:
    """The provider's avatars and the voices of `language`, for the topic form's pickers."""
    try:
        return {"avatars": catalog.avatars(), "voices": catalog.voices(language),
                "picker_error": ""}  # fmt: skip
    except ProviderError as error:
        return {"avatars": [], "voices": [], "picker_error": str(error)}


def _topic_form(data=None, *, initial=None, language: str = "en") -> tuple[TopicForm, dict]:
    pickers = _pickers(language)
    form = TopicForm(data, initial=initial,
                     avatars=[(avatar.id, avatar.name) for avatar in pickers["avatars"]],
                     voices=[(voice.id, voice.name) for voice in pickers["voices"]])  # fmt: skip
    return form, pickers


def _topic_form_page(request, form: TopicForm, topic: Topic | None, pickers: dict,
                     status: int = 200):  # fmt: skip
    def options(name: str, entries, describe) -> list[dict]:
        chosen = form[name].value() or ""
        listed = [{"id": "", "name": "The provider's default", "detail": "", "image": ""}]
        listed += [{"id": e.id, **describe(e)} for e in entries]
        if chosen and chosen not in {entry["id"] for entry in listed}:
            listed.append({"id": chosen, "name": chosen, "detail": "not offered any more",
                           "image": ""})  # fmt: skip
        return [{**entry, "checked": entry["id"] == chosen} for entry in listed]

    context = {
        "form": form, "topic": topic, "picker_error": pickers["picker_error"],
        "avatar_options": options("default_avatar_id", pickers["avatars"], lambda a: {
            "name": a.name, "detail": "", "image": a.preview_image_url}),
        "voice_options": options("default_voice_id", pickers["voices"], lambda v: {
            "name": v.name, "detail": " · ".join(filter(None, [v.language, v.gender])),
            "image": ""}),
    }  # fmt: skip
    return render(request, "studio/topic_form.html", context, status=status)


def _save_topic(request, topic: Topic | None):
    language = request.POST.get("language", "") or (topic.language if topic else "en")
    form, pickers = _topic_form(request.POST, language=language)
    if form.is_valid():
        try:
            if topic is None:
                topic = services.topic_create(**form.cleaned_data)
                messages.success(request, f"Topic “{topic.title}” created.")
            else:
                services.topic_update(topic=topic, **form.cleaned_data)
                messages.success(request, "Topic saved.")
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("studio:topic-detail", topic_id=topic.pk)
    return _topic_form_page(request, form, topic, pickers, status=400)


@login_required
@require(ADD_TOPIC)
@require_http_methods(["GET", "POST"])
def topic_create(request):
    if request.method == "POST":
        return _save_topic(request, None)
    form, pickers = _topic_form()
    return _topic_form_page(request, form, None, pickers)


@login_required
@require(CHANGE_TOPIC)
@require_http_methods(["GET", "POST"])
def topic_edit(request, topic_id: int):
    topic = get_object_or_404(Topic, pk=topic_id)
    if request.method == "POST":
        return _save_topic(request, topic)
    fields = {"title": topic.title, "language": topic.language, "description": topic.description,
              "default_avatar_id": topic.default_avatar_id,
              "default_voice_id": topic.default_voice_id}  # fmt: skip
    form, pickers = _topic_form(initial=fields, language=topic.language)
    return _topic_form_page(request, form, topic, pickers)


@login_required
@require(DELETE_TOPIC)
@require(DELETE_VIDEO)
@require_http_methods(["GET", "POST"])
def topic_delete(request, topic_id: int):
    """Asks first, naming how many videos and files go; then deletes the topic, its videos
    and (after commit) their files in storage."""
    topic = get_object_or_404(Topic, pk=topic_id)
    contents = selectors.topic_contents(topic)
    if request.method == "GET":
        return render(request, "studio/confirm_delete_topic.html",
                      {"topic": topic, **contents})  # fmt: skip
    title = topic.title
    count = services.topic_delete(topic=topic)
    files = contents["files"]
    videos = f"{count} video{'' if count == 1 else 's'}"
    stored = f"{files} file{' is' if files == 1 else 's are'} removed from storage"
    messages.success(request, f"Topic “{title}” deleted with its {videos}; {stored}.")
    return redirect("studio:topic-list")


_MOVE_FOCUS = re.compile(rf"move-({'|'.join(Direction.ALL)})-([0-9]+)")


def _focus(value: str) -> dict:
    """After a move the page comes back with `?focus=move-<direction>-<item id>`: keyboard
    focus goes back to the button that was pressed (no script needed)."""
    match = _MOVE_FOCUS.fullmatch(value)
    return {"direction": match[1], "item": int(match[2])} if match else {}


_BATCH = re.compile(r"([0-9]+)-([0-9]+)")


def _batch(value: str) -> tuple[int, int] | None:
    """`?batch=<first item id>-<last item id>`: the lessons one Confirm made."""
    match = _BATCH.fullmatch(value)
    return (int(match[1]), int(match[2])) if match else None


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def _render_topic(request, topic: Topic, form: GenerateAvatarVideoForm, status: int = 200):
    context = {"topic": topic, "form": form, "page": None, "cards": []}
    if request.user.has_perm(VIEW_VIDEOS):
        page = topic_videos_page(topic, request.GET.get("page"))
        context.update(page=page, cards=video_cards(page, first_number=page.start_index()))
        context["focus"] = _focus(request.GET.get("focus", ""))
        context["play"] = _int(request.GET.get("play", ""))
        batch = _batch(request.GET.get("batch", ""))
        if batch:
            context["batch"] = {"first": batch[0], "last": batch[1],
                                **batch_summary(topic.pk, *batch)}  # fmt: skip
    return render(request, "studio/topic_detail.html", context, status=status)


@login_required
@require(VIEW_VIDEOS)
@require_GET
def batch_progress(request, topic_id: int):
    """The batch summary line ("7 of 12 stored, 1 failed"), for the page to update in place."""
    batch = _batch(request.GET.get("batch", ""))
    if batch is None:
        return HttpResponseBadRequest("batch must be <first item id>-<last item id>.")
    return JsonResponse(batch_summary(topic_id, *batch))


@login_required
@require_GET
def topic_detail(request, topic_id: int):
    topic = get_object_or_404(Topic, pk=topic_id)
    form = GenerateAvatarVideoForm(initial={"language": topic.language})
    return _render_topic(request, topic, form)


@login_required
@require_http_methods(["GET", "POST"])
def generate_video(request, topic_id: int):
    """The generate form posts here: nothing is rendered yet, the page shows what would be
    made (the preview) with one Confirm."""
    topic = get_object_or_404(Topic, pk=topic_id)
    if request.method == "GET":  # e.g. reloading the page a form error left in the address bar
        return redirect("studio:topic-detail", topic_id=topic.pk)
    if not request.user.has_perm(GENERATE):
        raise missing(GENERATE)
    form = GenerateAvatarVideoForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_topic(request, topic, form, status=400)
    data = form.cleaned_data
    confirm = ConfirmGenerateForm(initial={
        "source_text": data["source_text"], "source_suffix": data["source_suffix"],
        "digest": data["batch"].digest, "language": data["language"],
        "request_token": data.get("request_token") or "",
        "avatar_id": data["avatar_id"], "voice_id": data["voice_id"]})  # fmt: skip
    return _render_preview(request, topic, data["batch"], confirm)


def _render_preview(request, topic: Topic, batch: ScriptBatch, confirm: ConfirmGenerateForm,
                    *, error: str = "", status: int = 200):  # fmt: skip
    """What a batch will make and what it costs; Confirm only when the quota covers it."""
    quota = catalog.remaining_quota()
    needed = batch.total_seconds
    refusal = error
    if not refusal and quota is not None and not quota.covers(needed):
        try:
            catalog.check_quota(needed)
        except QuotaExceeded as exceeded:
            refusal = str(exceeded)
        status = 409
    context = {"topic": topic, "batch": batch, "confirm": confirm, "quota": quota,
               "credits_needed": catalog.credits_for(needed), "refusal": refusal}  # fmt: skip
    return render(request, "studio/preview_batch.html", context, status=status)


def _batch_url(topic: Topic, items: list[ContentItem]) -> str:
    """The topic page that shows the batch's first lesson, with its summary."""
    page = selectors.lesson_page_number(items[0])
    query = {"page": str(page)} if page > 1 else {}
    query["batch"] = f"{items[0].pk}-{items[-1].pk}"
    return reverse("studio:topic-detail", args=[topic.pk]) + f"?{urlencode(query)}#videos"


@login_required
@require(GENERATE)
@require_http_methods(["POST"])
def confirm_generate(request, topic_id: int):
    """Confirm on the preview: the same text read again; renders only what was shown."""
    topic = get_object_or_404(Topic, pk=topic_id)
    form = ConfirmGenerateForm(request.POST)
    if not form.is_valid():
        problems = " ".join(message for errors in form.errors.values() for message in errors)
        messages.error(request, f"Nothing was generated: {problems}")
        return redirect("studio:topic-detail", topic_id=topic.pk)
    data = form.cleaned_data
    batch = data["batch"]
    try:
        catalog.check_quota(batch.total_seconds)
        jobs = generation.avatar_videos_generate(
            topic=topic, scripts=batch.scripts, language=data["language"],
            avatar_id=data["avatar_id"], voice_id=data["voice_id"], titles=batch.titles,
            request_token=data.get("request_token"),
        )  # fmt: skip
    except AlreadyQueued as repeat:  # the same Confirm posted again: show the first result
        messages.info(request, f"{repeat} Nothing new was queued.")
        items = [job.content_item for job in repeat.jobs]
        if items:
            return redirect(_batch_url(topic, sorted(items, key=lambda item: item.position)))
        return redirect("studio:topic-detail", topic_id=topic.pk)
    except GENERATION_ERRORS as error:
        return _render_preview(request, topic, batch, form, error=str(error), status=409)
    catalog.forget_quota()
    items = sorted((job.content_item for job in jobs), key=lambda item: item.position)
    if len(items) == 1:
        messages.success(request, f"“{items[0].title}” is queued; it appears below as it "
                                  "renders.")  # fmt: skip
    else:
        first, last = selectors.lesson_number(items[0]), selectors.lesson_number(items[-1])
        messages.success(request, f"{len(items)} videos queued as lessons {first} to {last}.")
    return redirect(_batch_url(topic, items))


def _video(topic_id: int, item_id: int) -> ContentItem:
    return get_object_or_404(
        ContentItem.objects.select_related("topic"),
        pk=item_id,
        topic_id=topic_id,
        content_type=ContentItem.ContentType.AVATAR_VIDEO,
    )


def _back_to(item: ContentItem, *, focus: str = "") -> str:
    """The topic page that shows the item (its page of lessons), scrolled to it: at its
    anchor, or with `focus` (a button's id) on that button, which autofocus scrolls into
    view (browsers ignore autofocus when the address names an anchor)."""
    page = selectors.lesson_page_number(item)
    query = {"page": str(page)} if page > 1 else {}
    if focus:
        query["focus"] = focus
    url = reverse("studio:topic-detail", args=[item.topic_id])
    return url + (f"?{urlencode(query)}" if query else "") + ("" if focus else f"#item-{item.pk}")


def _active_job(item: ContentItem) -> VideoJob | None:
    return item.video_jobs.filter(state__in=VideoJob.ACTIVE_STATES).first()


@login_required
@require(REGENERATE)
@require_http_methods(["GET", "POST"])
def regenerate_video(request, topic_id: int, item_id: int):
    """Asks first (a render credit); never while the video's job is queued or rendering:
    no second render from the studio."""
    item = _video(topic_id, item_id)
    if _active_job(item) is not None:
        messages.info(request, f"“{item.title}” is being generated already; Regenerate comes "
                               "back when it ends.")  # fmt: skip
        return redirect(_back_to(item))
    if request.method == "GET":
        return render(request, "studio/confirm_regenerate.html", {"card": video_card(item)})
    try:
        generation.avatar_video_regenerate(content_item=item)
    except GENERATION_ERRORS as error:
        messages.error(request, f"“{item.title}” was not regenerated: {error}")
    else:
        messages.success(request, f"“{item.title}” is queued to render again; the current "
                                  "video stays until the new one is stored.")  # fmt: skip
    return redirect(_back_to(item))


@login_required
@require_http_methods(["POST"])
def cancel_video(request, topic_id: int, item_id: int):
    """Cancel a video still waiting for a render slot: its slot goes to the next one and no
    render is requested (who may generate or regenerate may cancel)."""
    if not (request.user.has_perm(GENERATE) or request.user.has_perm(REGENERATE)):
        raise missing(GENERATE, REGENERATE)
    item = _video(topic_id, item_id)
    job = _active_job(item)
    cancelled = job and leases.cancel_queued(job.pk, cancelled_by=request.user.get_username())
    if cancelled:
        messages.success(request, f"“{item.title}” cancelled before it rendered; no credit was "
                                  "used.")  # fmt: skip
    elif job is None:
        messages.info(request, f"“{item.title}” is not waiting to render; nothing to cancel.")
    else:
        messages.error(request, f"“{item.title}” has started rendering and cannot be "
                                "cancelled any more.")  # fmt: skip
    return redirect(_back_to(item))


@login_required
@require(DELETE_VIDEO)
@require_http_methods(["GET", "POST"])
def delete_video(request, topic_id: int, item_id: int):
    item = _video(topic_id, item_id)
    if request.method == "GET":
        return render(request, "studio/confirm_delete.html",
                      {"card": video_card(item), "files": stored_objects(item)})  # fmt: skip
    files = len(stored_objects(item))
    services.content_item_delete(content_item=item)
    gone = f"; its {'file is' if files == 1 else f'{files} files are'} removed from storage"
    gone = gone if files else ""
    messages.success(request, f"“{item.title}” deleted{gone}.")
    return redirect("studio:topic-detail", topic_id=topic_id)


@login_required
@require(VIEW_VIDEOS)
@require_GET
def video_card_fragment(request, topic_id: int, item_id: int):
    """One video's card, for the page to swap in place when its job ends."""
    card = video_card(_video(topic_id, item_id))
    return render(request, "studio/_video_card.html", {"card": card, "topic": card.item.topic})


@login_required
@require(CHANGE_VIDEO)
@require_http_methods(["GET", "POST"])
def rename_video(request, topic_id: int, item_id: int):
    """The video's title: a small form on its card posts here; this page shows it on its own
    (and its errors)."""
    item = _video(topic_id, item_id)
    if request.method == "GET":
        form = VideoTitleForm(initial={"title": item.title})
        return render(request, "studio/rename_video.html", {"item": item, "form": form})
    form = VideoTitleForm(request.POST)
    if form.is_valid():
        try:
            services.content_item_rename(content_item=item, title=form.cleaned_data["title"])
        except ValidationError as error:
            form.add_error("title", error)
        else:
            messages.success(request, f"Video renamed “{item.title}”.")
            return redirect(_back_to(item))
    return render(request, "studio/rename_video.html", {"item": item, "form": form}, status=400)


@login_required
@require(CHANGE_VIDEO)
@require_http_methods(["POST"])
def move_video(request, topic_id: int, item_id: int):
    """Move up / Move down: the page comes back at the lesson, focus on the same button."""
    item = _video(topic_id, item_id)
    direction = request.POST.get("direction", "")
    if direction not in Direction.ALL:
        return HttpResponseBadRequest("Move a lesson up or down.")
    if not services.content_item_move(content_item=item, direction=direction):
        place = "first" if direction == Direction.UP else "last"
        messages.info(request, f"“{item.title}” is already the {place} lesson.")
    return redirect(_back_to(item, focus=f"move-{direction}-{item.pk}"))


@login_required
@require(VIEW_VIDEOS)
@require_GET
def download_video(request, topic_id: int, item_id: int):
    """The stored video as a download named after its title: a redirect to a signed URL
    whose response carries the Content-Disposition (storage serves the bytes)."""
    item = _video(topic_id, item_id)
    if not item.storage_path:
        raise Http404("This video is not in our storage.")
    try:
        storage = VideoStorage().in_bucket(item.storage_bucket)  # where the row says it is
        url = storage.download_url(item.storage_path, download_file_name(item.title))
    except StorageUnavailable as error:
        messages.error(request, f"The download could not start: {error}")
        return redirect(_back_to(item))
    return redirect(url)


@login_required
@require(VIEW_VIDEOS)
@require_GET
def video_captions(request, topic_id: int, item_id: int):
    """The video's captions (WebVTT) from this origin: a <track> loads only same-origin files
    or CORS answers, and storage's CORS is not ours to set. Keys are never reused, so the
    browser may keep it."""
    item = _video(topic_id, item_id)
    if not item.captions_path:
        raise Http404("This video has no captions.")
    try:
        vtt = (
            VideoStorage()
            .in_bucket(item.storage_bucket)
            .read_bytes(item.captions_path, max_bytes=CAPTIONS_MAX_BYTES)
        )
    except (FileNotFoundError, StorageUnavailable, InvalidVideo) as error:
        logger.warning("captions %s of item %s could not be read: %s", item.captions_path,
                       item.pk, error)  # fmt: skip
        raise Http404("The captions could not be read.") from error
    response = HttpResponse(vtt, content_type="text/vtt; charset=utf-8")
    response["Cache-Control"] = "private, max-age=3600"
    return response
