from django.urls import path

from tasks.accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.account_list, name="list"),
    path("<int:id>/", views.account_detail, name="detail"),  # "id", as the admin names one
]
