"""URL routes: the studio, the admin, auth, local media and the health probe."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from avatars.webhooks import heygen_webhook
from contentstudio import views as media_views
from studio.operators import healthz, storage_health_page

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("healthz/", healthz),  # the same answer: probes are written both ways
    path(
        "admin/storage-health/",
        admin.site.admin_view(storage_health_page),
        name="storage-health",
    ),
    path("admin/", admin.site.urls),
    path("webhooks/heygen/", heygen_webhook, name="heygen-webhook"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    re_path(r"^media/(?P<path>.+)$", media_views.public_media, name="public-media"),
    re_path(r"^signed-media/(?P<path>.+)$", media_views.signed_media, name="signed-media"),
    path("", include("studio.urls")),
]
