from django.urls import path, re_path

from tasks.api import views as api

app_name = "api"

urlpatterns = [
    path("task/list", api.task_list, name="list"),
    path("task/queue", api.task_queue, name="queue"),
    path("task/list-by-condition", api.task_list_by_condition, name="list-by-condition"),
    path("task/<str:task_id>/fetch", api.task_fetch, name="fetch"),
    path("openapi.json", api.openapi_json, name="openapi"),
    # Scripts get JSON for a mistyped path too, not the site's HTML 404 page.
    re_path(r"^(?P<path>.*)$", api.not_found),
]
