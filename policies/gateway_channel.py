"""The Rasa server's only way in: Rasa's REST channel behind a token, plus the parse the action server needs.

Rasa runs without its HTTP API (no `--enable-api`), so nothing on the machine can read or write a conversation's
slots; the gateway and the action server show the token (bot.sealing.rasa_token) as `Authorization: Bearer …`.

    POST /webhooks/gateway/webhook  {"sender", "message", "input_channel", "metadata"}  → Rasa's REST replies
    POST /webhooks/gateway/parse    {"text"}                                          → Rasa's parse result
    GET  /webhooks/gateway/                                                           → {"status": "ok"} (no token)

credentials.yml names it: `policies.gateway_channel.GatewayInput:`.
"""

from __future__ import annotations

import hmac
from typing import Any, Awaitable, Callable, Dict, Text

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request

from bot import sealing
from policies import action_validation, event_types

# Rasa loads this channel at start: from then on it checks the action server's answers without re-checking the schema
action_validation.install()
event_types.install()


class GatewayInput(RestInput):
    @classmethod
    def name(cls) -> Text:
        return "gateway"

    @classmethod
    def from_credentials(cls, credentials: Dict[Text, Any] | None) -> GatewayInput:
        return cls()

    def __init__(self) -> None:
        self.token = sealing.rasa_token()

    def authorised(self, request: Request) -> bool:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode("utf-8", "replace"), f"Bearer {self.token}".encode())

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        blueprint = super().blueprint(on_new_message)

        @blueprint.middleware("request")
        async def require_token(request: Request):
            if request.method != "GET" and not self.authorised(request):
                return response.json({"error": "unauthorized"}, status=401)

        @blueprint.route("/parse", methods=["POST"])
        async def parse(request: Request):
            text = (request.json or {}).get("text") if isinstance(request.json, dict) else None
            if not isinstance(text, str):
                return response.json({"error": "text must be a string"}, status=400)
            return response.json(await request.app.ctx.agent.parse_message(text))

        return blueprint
