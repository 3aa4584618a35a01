"""The gateway's access log: who asked for which path, the status, the size and the time — never the query string.

Query strings carry secrets and personal data: WeChat's signature, msg_signature, nonce, echostr and the resident's
openid on every /wechat call, and staff searches (names, ID numbers) in /staff. aiohttp's default access log writes
the whole first line of the request (`%r`), so `python -m bot.web` uses this one instead.
"""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


def size(length: int) -> str:
    """A body's size as the log shows it: bytes below 100,000, else KiB (six digits in a row would be masked as a
    verification code by the log masking, bot.privacy)."""
    return str(length) if length < 100_000 else f"{length / 1024:.0f}KiB"


class AccessLog(AbstractAccessLogger):
    """Each figure after its name (status=, bytes=, time=): numbers side by side could read as one typed code."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" status=%s bytes=%s time=%.3fs',
            request.remote or "-",
            request.method,
            request.rel_url.raw_path,  # still percent-encoded: a decoded path could break the line
            response.status,
            size(response.body_length),
            time,
        )
