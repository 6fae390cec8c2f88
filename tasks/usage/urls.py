from django.urls import path

from tasks.usage import views

app_name = "usage"

urlpatterns = [
    path("", views.usage, name="usage"),
]
