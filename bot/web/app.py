"""The gateway: the only door open to the network. `python -m bot.web` serves it on ANJU_GATEWAY_PORT (8080)."""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path

import aiohttp
from aiohttp import web

from bot import migrate, sealing
from bot import settings as settings_module
from bot.clients import keys, shared_state, wechat
from bot.clients.rasa import RasaClient
from bot.privacy import install_log_masking
from bot.staff.views import staff_gate
from bot.throttle import Throttle
from bot.web.access_log import AccessLog
from bot.web.routes import setup_routes
from bot.web.wechat import setup_wechat

logger = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 64 * 1024


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@web.middleware
async def security_headers(request: web.Request, handler):
    """Every response: no inline script, no framing, no sniffing, no referrer; nothing private cached."""
    try:
        response = await handler(request)
    except web.HTTPException as e:
        response = e
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.path.startswith(("/api/", "/staff", "/wechat", "/healthz")):
        response.headers["Cache-Control"] = "no-store"
    if isinstance(response, web.HTTPException):
        raise response
    return response


async def _no_server_version(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "anju"


@web.middleware
async def errors_without_traces(request: web.Request, handler):
    """Whatever goes wrong, nobody sees a stack trace: JSON for the API, a short Chinese page elsewhere."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if request.path.startswith("/api/") and e.status >= 400:
            message = "请求太大（最多64KB）" if e.status == 413 else e.reason
            return web.json_response({"error": e.reason.lower().replace(" ", "_"), "message": message}, status=e.status)
        raise
    except Exception:
        logger.exception("unexpected error on %s", request.path)
        if request.path.startswith("/api/"):
            return web.json_response({"error": "internal", "message": "系统出了点问题，请稍后再试"}, status=500)
        return web.Response(status=500, text="系统出了点问题，请稍后再试。", content_type="text/plain", charset="utf-8")


async def _http_client(app: web.Application):
    settings = app[keys.SETTINGS]
    async with aiohttp.ClientSession() as session:
        token = await asyncio.to_thread(sealing.rasa_token, settings)
        app[keys.RASA] = RasaClient(
            session, settings.rasa_urls, settings.rasa_timeout_seconds, token, settings.rasa_max_concurrent
        )
        app[keys.WECHAT_API] = wechat.ServiceApi(
            session, settings.wechat_api_base, settings.wechat_app_id, settings.wechat_app_secret
        )
        yield
        background = app[keys.BACKGROUND]
        if background:
            await asyncio.gather(*background, return_exceptions=True)


async def _shared_state(app: web.Application):
    yield
    if app[keys.SHARED_STATE] is not None:
        await app[keys.SHARED_STATE].close()


async def _build_faq_index(app: web.Application) -> None:
    from bot import knowledge
    from bot.faq import FaqIndex

    app[keys.FAQ] = await asyncio.to_thread(FaqIndex, knowledge.load(), settings_module.ROOT / "data" / "nlu")


async def _upgrade_database(app: web.Application) -> None:
    """The gateway starts on the current schema (make run has migrated already; then this changes nothing)."""
    await asyncio.to_thread(migrate.upgrade, app[keys.SETTINGS].database_url)


async def init_app(settings: settings_module.Settings | None = None) -> web.Application:
    settings = settings or settings_module.load()
    app = web.Application(
        middlewares=[security_headers, errors_without_traces, staff_gate], client_max_size=MAX_BODY_BYTES
    )
    app.on_response_prepare.append(_no_server_version)
    app[keys.SETTINGS] = settings
    app[keys.STATIC_DIR] = STATIC
    # with REDIS_URL, rate limits and WeChat's turns and nonces are shared by every gateway process
    shared = app[keys.SHARED_STATE] = shared_state.connect(settings.redis_url)
    setup_wechat(app, settings)  # refuses to start with an EncodingAESKey but no AppID
    app[keys.THROTTLE] = (functools.partial(shared_state.SharedThrottle, shared) if shared else Throttle)(
        settings.rate_limit_per_ip,
        settings.trusted_proxies,
        burst=settings.rate_limit_burst,
        per_second=settings.rate_limit_per_second,
    )
    app[keys.BACKGROUND] = set()
    app.cleanup_ctx.append(_shared_state)  # closed last: late WeChat deliveries still use it
    app.cleanup_ctx.append(_http_client)
    app.on_startup.append(_upgrade_database)
    app.on_startup.append(_build_faq_index)
    setup_routes(app)
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_masking()
    settings = settings_module.load()
    print(
        f"安居助手 gateway: chat http://localhost:{settings.gateway_port}/  kiosk http://localhost:{settings.gateway_port}/kiosk"
    )
    # AccessLog: no query strings in the log (WeChat's signature and nonce, the resident's openid, staff searches)
    web.run_app(
        init_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        print=None,
        access_log_class=AccessLog,
    )
