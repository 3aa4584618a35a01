"""URL routes of the gateway."""

from __future__ import annotations

from aiohttp import web

from bot import keys, views


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", views.chat_page)
    app.router.add_get("/kiosk", views.kiosk_page)
    app.router.add_post("/api/chat", views.api_chat)
    app.router.add_get("/healthz", views.healthz)
    app.router.add_get("/wechat", views.wechat_verify)
    app.router.add_post("/wechat", views.wechat_message)
    app.router.add_static("/static/", app[keys.STATIC_DIR], name="static")
