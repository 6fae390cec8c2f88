from django.urls import path

from . import hooks

app_name = "hooks"

urlpatterns = [
    path("mj/<str:token>/", hooks.receive, name="receive"),
]
