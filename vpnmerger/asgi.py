"""ASGI entry for daphne: Django for HTTP, the topic consumers for WebSockets.

WebSockets pass the origin check (the Origin header must name a host in ALLOWED_HOSTS) and carry
the session user, so consumers can close anonymous sockets.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vpnmerger.settings")

# Django must be set up before the routing imports models through the consumers.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from vpnmerger.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
