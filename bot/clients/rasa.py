"""Talks to the Rasa server's REST channel with aiohttp, with a timeout; failures become RasaUnavailable."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

import aiohttp


class RasaUnavailable(Exception):
    """Rasa did not answer in time, or not at all."""


class RasaClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, timeout_seconds: float):
        self._session = session
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def send(
        self, sender: str, message: str, channel: str, metadata: Dict[str, Any] | None = None
    ) -> List[Dict[str, Any]]:
        """Rasa's replies to one message: [{"recipient_id", "text", "buttons"?}, …]."""
        payload = {"sender": sender, "message": message, "input_channel": channel, "metadata": metadata or {}}
        try:
            async with self._session.post(
                f"{self._base}/webhooks/rest/webhook", json=payload, timeout=self._timeout
            ) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}")
                replies = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
            raise RasaUnavailable(str(e) or e.__class__.__name__) from e
        if not isinstance(replies, list):
            raise RasaUnavailable("Rasa's reply is not a list")
        return replies

    async def healthy(self, url: str | None = None) -> bool:
        try:
            async with self._session.get(url or f"{self._base}/", timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False
