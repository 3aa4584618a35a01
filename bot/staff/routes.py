"""URL routes of the staff console (/staff)."""

from __future__ import annotations

from aiohttp import web

from bot.staff import views as staff

# a database id in a URL: few enough digits for any integer column (SQLite raised OverflowError past 2**63)
ID = "[0-9]{1,9}"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/staff/login", staff.login_form)
    app.router.add_post("/staff/login", staff.login)
    app.router.add_post("/staff/logout", staff.logout)
    app.router.add_get("/staff", staff.home)
    app.router.add_post("/staff/ask", staff.ask)
    app.router.add_get("/staff/households", staff.households)
    app.router.add_get("/staff/households/{household_id}", staff.household)
    app.router.add_get("/staff/audit", staff.audit_log)
    app.router.add_get("/staff/users", staff.users)
    app.router.add_post("/staff/users", staff.create_user)
    app.router.add_post("/staff/users/{user_id:" + ID + "}/disable", staff.disable_user)
    app.router.add_get("/staff/unanswered", staff.unanswered)
    app.router.add_post("/staff/unanswered/handled", staff.mark_handled)
    app.router.add_get("/staff/unanswered/export.yml", staff.export_unanswered)
    app.router.add_get("/staff/tickets", staff.ticket_list)
    app.router.add_post("/staff/tickets/{ticket_id:" + ID + "}/reply", staff.ticket_reply)
    app.router.add_post("/staff/tickets/{ticket_id:" + ID + "}/close", staff.ticket_close)
