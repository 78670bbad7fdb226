"""URLs of the merger app that clients reach without logging in."""

from django.urls import path

from . import subscription

app_name = "merger"

urlpatterns = [
    path("sub/<str:token>", subscription.subscription, name="subscription"),
]
