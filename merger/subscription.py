"""The served subscription: GET /sub/<token>[?target=FORMAT].

The format comes from ?target= or, without it, from the client's User-Agent. The response
carries the headers subscription clients read: subscription-userinfo (traffic quota),
profile-update-interval (hours) and content-disposition (the file name clients show as the
profile's title), plus an ETag so that polling clients get 304 when nothing changed.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotModified
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_safe

from . import profiles

logger = logging.getLogger(__name__)

# One body for unknown, revoked and expired tokens, so the answer does not tell them apart.
NOT_FOUND_BODY = b"Subscription not found.\n"


def _not_found() -> HttpResponse:
    response = HttpResponse(NOT_FOUND_BODY, status=404, content_type="text/plain; charset=utf-8")
    # Django's request logger would write "Not Found: /sub/<token>"; this view logs instead,
    # without the path. The logging filter in merger.logfilters redacts other request logs.
    response._has_been_logged = True  # type: ignore[attr-defined]
    logger.info("subscription request with an unknown, revoked or expired token")
    return response


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """Return True if an If-None-Match value lists this ETag or "*" (weak comparison, RFC 9110)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


@require_safe
def subscription(request: HttpRequest, token: str) -> HttpResponse:
    profile = profiles.find_profile(token, timezone.now())
    if profile is None:
        return _not_found()

    target = request.GET.get("target", "")
    if target:
        try:
            fmt = profiles.format_for_target(target)
        except profiles.UnknownTarget as error:
            response = HttpResponseBadRequest(f"{error}\n", content_type="text/plain; charset=utf-8")
            response._has_been_logged = True  # type: ignore[attr-defined]
            logger.info("subscription %s requested with %s", profile.pk, error)
            return response
    else:
        fmt = profiles.format_for_user_agent(request.headers.get("User-Agent", ""), profile.default_format)

    rendered = profiles.render_profile(profile, fmt)
    if _etag_matches(request.headers.get("If-None-Match", ""), rendered.etag):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(rendered.body, content_type=rendered.content_type)
    response["ETag"] = rendered.etag
    # The body depends on the User-Agent when no ?target= is given, so caches must key on it.
    response["Vary"] = "User-Agent"
    response["Cache-Control"] = "private, no-cache"
    response["profile-update-interval"] = str(profile.update_interval_hours)
    response["Content-Disposition"] = content_disposition_header(True, rendered.filename)
    userinfo = profiles.userinfo_for(profile, profiles.served_run())
    if userinfo:
        response["subscription-userinfo"] = profiles.format_userinfo(userinfo)
    logger.debug("subscription %s served as %s: %d nodes", profile.pk, fmt, rendered.count)
    return response
