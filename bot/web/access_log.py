"""The gateway's access log: who asked for which path, the status, the size and the time — never the query string.

Query strings carry secrets and personal data: WeChat's signature, msg_signature, nonce, echostr and the resident's
openid on every /wechat call, and staff searches (names, ID numbers) in /staff. aiohttp's default access log writes
the whole first line of the request (`%r`), so `python -m bot.web` uses this one instead.
"""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class AccessLog(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.3fs',
            request.remote or "-",
            request.method,
            request.rel_url.raw_path,  # still percent-encoded: a decoded path could break the line
            response.status,
            response.body_length,
            time,
        )
