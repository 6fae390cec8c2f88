from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("mj/", include("tasks.api.urls")),
    path("hooks/", include("tasks.ingest.urls")),
    path("media/", include("tasks.archive.urls")),
    path("alerts/", include("tasks.alerts.urls")),
    path("usage/", include("tasks.usage.urls")),
    path("discord-accounts/", include("tasks.accounts.urls")),
    path("", include("tasks.reports.urls")),  # /healthz and /metrics
    path("", include("tasks.curation.urls")),  # stars, tags, collections, share links
    path("", include("tasks.web.urls")),
]
