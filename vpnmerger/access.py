"""Access rule for the operator pages, the API and the live sockets: active staff users only.

The pages start merges, read sources (with their headers and tokens) and can point a source at
a local file, so a plain account must not reach them. Staff status is the switch the Django
admin already uses for the same trust.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


def is_operator(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def operator_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Redirect anonymous visitors to the login page and return 403 to signed-in non-staff users."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_operator(request.user):
            raise PermissionDenied("Only staff users may use the operator pages.")
        return view(request, *args, **kwargs)

    return wrapped
