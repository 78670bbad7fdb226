"""WebSocket consumers: anonymous and foreign-origin sockets are refused, users get run events."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from merger import services
from tests.conftest import SAMPLES_DIR
from vpnmerger.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1")


@database_sync_to_async
def session_cookie() -> bytes:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("bob", password="correct horse battery", is_staff=True)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def test_anonymous_socket_closed():
    communicator = WebsocketCommunicator(application, "/ws/runs/", headers=[ORIGIN])
    connected, code = await communicator.connect()
    assert connected is False
    assert code == 4401
    await communicator.disconnect()


async def test_foreign_origin_refused():
    cookie = await session_cookie()
    headers = [(b"origin", b"http://evil.example"), (b"cookie", cookie)]
    communicator = WebsocketCommunicator(application, "/ws/runs/", headers=headers)
    connected, _code = await communicator.connect()
    assert connected is False
    await communicator.disconnect()


@pytest.mark.parametrize("topic", ["health", "alerts", "deployments"])
async def test_logged_in_user_joins_topic(topic):
    cookie = await session_cookie()
    communicator = WebsocketCommunicator(application, f"/ws/{topic}/", headers=[ORIGIN, (b"cookie", cookie)])
    connected, _code = await communicator.connect()
    assert connected is True
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"event": "pong"}
    await communicator.disconnect()


async def test_logged_in_user_receives_run_events():
    cookie = await session_cookie()
    communicator = WebsocketCommunicator(application, "/ws/runs/", headers=[ORIGIN, (b"cookie", cookie)])
    connected, _code = await communicator.connect()
    assert connected is True
    try:
        inputs = services.inputs_from_locations([str(SAMPLES_DIR / "links.txt")])
        run = await database_sync_to_async(services.run_merge)(inputs=inputs, trigger="test")
        received = []
        while True:
            message = await communicator.receive_json_from(timeout=5)
            received.append(message)
            if message["event"] == "run.status" and message["status"] == "succeeded":
                break
        progress = [message for message in received if message["event"] == "run.progress"]
        assert {message["run_id"] for message in received} == {run.pk}
        assert progress[-1]["progress"] == 100.0
        assert [message["stage"] for message in progress][0] == "fetch"
        assert received[-1]["unique"] == run.unique
        assert await communicator.receive_nothing(timeout=0.2)
    finally:
        await communicator.disconnect()


async def test_anonymous_socket_gets_no_events():
    communicator = WebsocketCommunicator(application, "/ws/runs/", headers=[ORIGIN])
    connected, _code = await communicator.connect()
    assert connected is False
    assert await communicator.receive_nothing(timeout=0.1)
    await communicator.disconnect()
