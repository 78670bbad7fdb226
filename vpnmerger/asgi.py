"""ASGI entry for daphne: HTTP now; WebSocket routes join the router as the dashboard lands."""

import os

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vpnmerger.settings")

application = ProtocolTypeRouter({"http": get_asgi_application()})
