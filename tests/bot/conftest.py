"""Gateway test fixtures: the gateway app on a test server, and local HTTP servers where the gateway talks out.

`upstream` speaks the Rasa REST channel's contract with a delay we control, to test the gateway's own timeouts and
deduplication; the real Rasa server is exercised in tests/e2e. `wechat_api` stands in for WeChat's servers, which are
outside this machine.
"""

import asyncio
import dataclasses
import json

import pytest
from aiohttp import web

from bot import sealing
from bot.privacy import PRIVATE_REPLY_MARK as PRIVATE_MARK
from bot.settings import Settings
from bot.web.app import init_app

TOKEN = "anjutoken"
APP_ID = "wx1234567890abcdef"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues them


class Upstream:
    def __init__(self):
        self.requests = []
        self.delay = 0.0
        self.silent = False  # answer [] as Rasa does when an action fails
        self.private = False  # add the action's private mark (a verified household's turn)
        self.refused = 0  # requests without the gateway channel's token
        self.in_flight = self.max_in_flight = 0
        self.app = web.Application()
        self.app.router.add_post("/webhooks/gateway/webhook", self.webhook)
        self.app.router.add_get("/", self.root)
        self.app.router.add_get("/health", self.root)

    async def webhook(self, request):
        if request.headers.get("Authorization") != f"Bearer {sealing.rasa_token()}":
            self.refused += 1
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.json()
        self.requests.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if self.silent:
            return web.json_response([])
        replies = [
            {
                "recipient_id": body["sender"],
                "text": f"答：{body['message']}",
                "buttons": [{"title": "医保", "payload": "医保"}],
            }
        ]
        if self.private:
            replies.append({"recipient_id": body["sender"], "custom": PRIVATE_MARK})
        return web.json_response(replies)

    async def root(self, request):
        return web.Response(text="ok")


class WeChatApi:
    def __init__(self):
        self.token_requests = 0
        self.sent = []
        self.app = web.Application()
        self.app.router.add_get("/cgi-bin/token", self.token)
        self.app.router.add_post("/cgi-bin/message/custom/send", self.send)

    async def token(self, request):
        self.token_requests += 1
        assert request.query["appid"] == APP_ID and request.query["secret"] == "secret"
        return web.json_response({"access_token": f"TOKEN{self.token_requests}", "expires_in": 7200})

    async def send(self, request):
        self.sent.append((request.query["access_token"], json.loads(await request.text())))
        return web.json_response({"errcode": 0, "errmsg": "ok"})


@pytest.fixture
async def upstream(aiohttp_server):
    stub = Upstream()
    stub.server = await aiohttp_server(stub.app)
    return stub


@pytest.fixture
async def wechat_api(aiohttp_server):
    stub = WeChatApi()
    stub.server = await aiohttp_server(stub.app)
    return stub


@pytest.fixture
def settings(upstream, wechat_api, database_url):
    base = f"http://127.0.0.1:{upstream.server.port}"
    return dataclasses.replace(
        Settings(),
        rasa_url=base,
        actions_url=base,
        rasa_timeout_seconds=2.0,
        wechat_token=TOKEN,
        wechat_app_id=APP_ID,
        wechat_app_secret="secret",
        wechat_aes_key=AES_KEY,
        wechat_api_base=f"http://127.0.0.1:{wechat_api.server.port}",
        wechat_reply_deadline=1.0,
        kiosk_idle_seconds=90,
    )


@pytest.fixture
async def client(aiohttp_client, settings):
    return await aiohttp_client(await init_app(settings))


@pytest.fixture
def make_client(aiohttp_client):
    async def make(settings):
        return await aiohttp_client(await init_app(settings))

    return make
