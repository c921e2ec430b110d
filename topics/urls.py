from django.urls import path

from topics import views

app_name = "studio"

urlpatterns = [
    path("", views.topic_list, name="topic-list"),
    path("topics/<int:topic_id>/", views.topic_detail, name="topic-detail"),
    path("topics/<int:topic_id>/videos/", views.generate_video, name="generate-video"),
]
