from django.urls import path

from tasks.curation import views

app_name = "curation"

urlpatterns = [
    path("tasks/<str:task_id>/favourite/", views.favourite, name="favourite"),
    path("tasks/<str:task_id>/share/", views.share_task, name="share_task"),
    path("curation/marks/", views.task_marks, name="marks"),
    path("curation/tags/", views.tag_suggestions, name="tags"),
    path("curation/selection/", views.selection, name="selection"),
    path("curation/download.zip", views.zip_download, name="zip"),
    path("collections/", views.collection_list, name="collections"),
    path("collections/<int:pk>/", views.collection_detail, name="collection"),
    path("collections/<int:pk>/share/", views.share_collection, name="share_collection"),
    path("shares/", views.share_list, name="shares"),
    path("s/<str:token>/", views.shared, name="shared"),
    path("s/<str:token>/revoke/", views.revoke, name="revoke"),
    path("s/<str:token>/file/<int:pk>/<str:which>", views.shared_file, name="shared_file"),
]
