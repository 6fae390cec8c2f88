from django.urls import path

from tasks.ingest import hooks

app_name = "hooks"

urlpatterns = [
    path("mj/<str:token>/", hooks.receive, name="receive"),
]
