"""Talks to the Rasa server's gateway channel (Rasa's REST contract behind a token, policies/gateway_channel.py) with
aiohttp, with a timeout; failures become RasaUnavailable (RasaTooSlow when the time ran out)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, List

import aiohttp


class RasaUnavailable(Exception):
    """Rasa did not answer in time, or not at all."""


class RasaTooSlow(RasaUnavailable):
    """Rasa did not answer within the time given (it may be busy, or hung); it may still be working on the message."""


class RasaClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        timeout_seconds: float,
        token: str,
        max_concurrent: int = 16,
    ):
        self._session = session
        # at most this many requests in flight to Rasa; the rest wait their turn, within the same timeout
        self._slots = asyncio.Semaphore(max(1, max_concurrent))
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._headers = {"Authorization": f"Bearer {token}"}

    async def send(
        self,
        sender: str,
        message: str,
        channel: str,
        metadata: Dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> List[Dict[str, Any]]:
        """Rasa's replies to one message: [{"recipient_id", "text", "buttons"?}, …], within `timeout` seconds (the
        client's timeout when None), waiting for a free slot included."""
        payload = {"sender": sender, "message": message, "input_channel": channel, "metadata": metadata or {}}
        total = self._timeout.total if timeout is None else timeout
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._slots.acquire(), total)
        except asyncio.TimeoutError as e:
            raise RasaTooSlow("too many requests in flight to Rasa") from e
        try:
            left = aiohttp.ClientTimeout(total=max(0.1, total - (time.monotonic() - started)))
            async with self._session.post(
                f"{self._base}/webhooks/gateway/webhook", json=payload, headers=self._headers, timeout=left
            ) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}")
                replies = await response.json(content_type=None)
        except asyncio.TimeoutError as e:
            raise RasaTooSlow(f"no answer within {total:g} s") from e
        except (aiohttp.ClientError, ValueError) as e:
            raise RasaUnavailable(str(e) or e.__class__.__name__) from e
        finally:
            self._slots.release()
        if not isinstance(replies, list):
            raise RasaUnavailable("Rasa's reply is not a list")
        return replies

    async def healthy(self, url: str | None = None) -> bool:
        try:
            async with self._session.get(url or f"{self._base}/", timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False
