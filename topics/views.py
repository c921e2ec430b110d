"""Studio pages for topics (thin: selectors read, services write)."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import get_object_or_404, render

from topics.models import Topic


@login_required
def topic_list(request):
    query = request.GET.get("q", "").strip()
    topics = Topic.objects.annotate(item_count=Count("content_items"))
    if query:
        topics = topics.filter(title__icontains=query)
    page = Paginator(topics, 25).get_page(request.GET.get("page"))
    return render(request, "studio/topic_list.html", {"page": page, "query": query})


@login_required
def topic_detail(request, topic_id: int):
    topic = get_object_or_404(Topic, pk=topic_id)
    items = topic.content_items.all()
    return render(request, "studio/topic_detail.html", {"topic": topic, "items": items})
