"""Reading what a browser posts to the staff console, whatever it sends: a body that does not decode is a 400, a token
that is not ASCII is simply wrong, and text fields lose control, bidi and zero-width characters (PostgreSQL refuses a
NUL in text; a right-to-left override garbles a page and what residents are sent). Passwords are left as typed."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict, MultiDictProxy

from bot.text_normalization import clean_input

AS_TYPED = frozenset({"password"})


async def posted(request: web.Request) -> MultiDictProxy:
    """The posted form with its text fields cleaned; a body that is not a readable form is refused with a 400."""
    try:
        form = await request.post()
    except (UnicodeDecodeError, ValueError, AssertionError, HttpProcessingError) as e:
        # what aiohttp raises for a form not in UTF-8 and for a broken multipart body (bad headers, no boundary)
        raise web.HTTPBadRequest(text="表单无法读取，请刷新页面再试", content_type="text/plain") from e
    cleaned: MultiDict = MultiDict()
    for name, value in form.items():
        cleaned.add(name, value if name in AS_TYPED or not isinstance(value, str) else clean_input(value))
    return MultiDictProxy(cleaned)


def same_token(given: object, expected: str) -> bool:
    """A constant-time comparison that is False, not a TypeError, when what was sent is not ASCII."""
    return hmac.compare_digest(str(given or "").encode("utf-8"), expected.encode("utf-8"))


def query_text(request: web.Request, name: str, limit: int) -> str:
    """A search box's text from the query string, cleaned like a form field and cut to `limit`."""
    return clean_input(request.query.get(name, "")).strip()[:limit]


def path_text(request: web.Request, name: str) -> str:
    """A part of the URL path (aiohttp matches routes on the percent-encoded path, so a route's pattern cannot keep a
    %00 out); one with control or invisible characters names nothing: 404."""
    value = request.match_info[name]
    if clean_input(value) != value:
        raise web.HTTPNotFound(text="找不到这一页", content_type="text/plain")
    return value
