from django.urls import path

from tasks.archive import media as media_views

app_name = "media"

urlpatterns = [
    path("<path:name>", media_views.serve_file, name="file"),
]
