from django.urls import path

from avatars import views

app_name = "avatars"

urlpatterns = [
    path("jobs/progress", views.jobs_progress, name="jobs-progress"),
    path("jobs/<int:job_id>/progress", views.job_progress, name="job-progress"),
]
