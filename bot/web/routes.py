"""URL routes of the gateway: the resident doors here, the staff console's from bot.staff.routes."""

from __future__ import annotations

from aiohttp import web

from bot.clients import keys
from bot.staff import routes as staff_routes
from bot.web import views, wechat


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", views.chat_page)
    app.router.add_get("/kiosk", views.kiosk_page)
    # the JSON doors, each with its own namespace of conversations (bot.web.views.DOORS)
    app.router.add_post("/api/chat", views.chat_handler("api"))
    app.router.add_post("/api/messages", views.messages_handler("api"))
    for door in ("web", "kiosk"):
        app.router.add_post(f"/api/{door}/chat", views.chat_handler(door))
        app.router.add_post(f"/api/{door}/messages", views.messages_handler(door))
    app.router.add_get("/healthz", views.healthz)
    app.router.add_get("/wechat", wechat.wechat_verify)
    app.router.add_post("/wechat", wechat.wechat_message)
    staff_routes.setup_routes(app)
    app.router.add_static("/static/", app[keys.STATIC_DIR], name="static")
