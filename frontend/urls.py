from django.urls import path

from frontend import views

app_name = "frontend"

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("login/", views.catalogue, name="login"),
]
