"""Typed keys for what the gateway application shares between handlers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Set

from aiohttp import web

from bot.clients import shared_state, wechat
from bot.clients.rasa import RasaClient
from bot.settings import Settings
from bot.throttle import Throttle

SETTINGS = web.AppKey("settings", Settings)
STATIC_DIR = web.AppKey("static_dir", Path)
RASA = web.AppKey("rasa", RasaClient)
WECHAT_CRYPTO = web.AppKey("wechat_crypto", wechat.Crypto | None)
WECHAT_API = web.AppKey("wechat_api", wechat.ServiceApi)
WECHAT_TURNS = web.AppKey("wechat_turns", wechat.TurnCache)
WECHAT_REPLAYS = web.AppKey("wechat_replays", wechat.ReplayGuard)
BACKGROUND = web.AppKey("background", Set[asyncio.Future])
THROTTLE = web.AppKey("throttle", Throttle)
# REDIS_URL's connection for the state gateway processes share; None without Redis
SHARED_STATE = web.AppKey("shared_state", shared_state.SharedState | None)
FAQ = web.AppKey("faq", object)  # bot.staff.search.FaqIndex, built at start-up
