"""Studio pages for topics (thin: selectors read, services write)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from avatars.errors import GENERATION_ERRORS
from avatars.jobs import request_avatar_video
from avatars.selectors import topic_videos_page
from topics import selectors
from topics.forms import GenerateAvatarVideoForm
from topics.models import Topic


@login_required
def topic_list(request):
    query = request.GET.get("q", "").strip()
    topics = Paginator(selectors.topic_list(query=query), selectors.TOPICS_PER_PAGE)
    page = topics.get_page(request.GET.get("page"))
    return render(request, "studio/topic_list.html", {"page": page, "query": query})


def _render_topic(request, topic: Topic, form: GenerateAvatarVideoForm, status: int = 200):
    page = topic_videos_page(topic, request.GET.get("page"))
    items = [(item, selectors.video_view(item)) for item in page]
    context = {"topic": topic, "page": page, "items": items, "form": form}
    return render(request, "studio/topic_detail.html", context, status=status)


@login_required
def topic_detail(request, topic_id: int):
    topic = get_object_or_404(Topic, pk=topic_id)
    form = GenerateAvatarVideoForm(initial={"language": topic.language})
    return _render_topic(request, topic, form)


@login_required
@require_POST
def generate_video(request, topic_id: int):
    topic = get_object_or_404(Topic, pk=topic_id)
    form = GenerateAvatarVideoForm(request.POST)
    if form.is_valid():
        try:
            job = request_avatar_video(topic=topic, **form.cleaned_data)
        except GENERATION_ERRORS as error:
            form.add_error("script", str(error))
        else:
            messages.success(request, f"Video generation queued (job {job.pk}).")
            return redirect("studio:topic-detail", topic_id=topic.pk)
    return _render_topic(request, topic, form, status=400)
