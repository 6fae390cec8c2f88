from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("mj/", include("tasks.api_urls")),
    path("hooks/", include("tasks.hook_urls")),
    path("media/", include("tasks.media_urls")),
    path("", include("tasks.health_urls")),  # /healthz and /metrics
    path("", include("tasks.urls")),
]
