from django.contrib.auth.decorators import login_required
from django.urls import path
from django.views.i18n import set_language

from tasks.web import exports, views

app_name = "tasks"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("tasks/", views.task_list, name="list"),
    path("tasks/live/", views.list_live, name="list_live"),
    path("tasks/export.csv", exports.export_csv, name="export_csv"),
    path("tasks/export.jsonl", exports.export_jsonl, name="export_jsonl"),
    path("tasks/<str:task_id>/", views.task_detail, name="detail"),
    path("tasks/<str:task_id>/live/", views.detail_live, name="detail_live"),
    path("tasks/<str:task_id>/refresh/", views.refresh, name="refresh"),
    path("gallery/", views.gallery, name="gallery"),
    # Django's language switch (POST), behind the login like every other page.
    path("i18n/setlang/", login_required(set_language), name="set_language"),
]
