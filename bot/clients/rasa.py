"""Talks to the Rasa servers' gateway channel (Rasa's REST contract behind a token, policies/gateway_channel.py) with
aiohttp, with a timeout; failures become RasaUnavailable (RasaTooSlow when the time ran out).

With several Rasa servers (ANJU_RASA_URLS, README: Scaling) each conversation goes to its own server (bot.replicas:
rendezvous hashing on the conversation id), and to the next in its order only when its own refuses the connection.
A message is sent again elsewhere only when it provably never reached Rasa (the connection was never made); after a
timeout or a dropped answer Rasa may have taken the turn, and sending it again could answer it twice."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Dict, List, Sequence

import aiohttp

from bot.replicas import Replicas

logger = logging.getLogger(__name__)
# a TCP connection to a live Rasa server is made in well under this (loopback or a LAN); past it, the server is gone
CONNECT_SECONDS = 1.0
HEALTH_SECONDS = 2.0
# the connection was never made, so nothing was sent: refused, unreachable, or no TCP handshake within the connect
# timeout (aiohttp 3.10+ names that ConnectionTimeoutError; 3.9, whose ServerTimeoutError here can only come from the
# connect since no sock_read timeout is set)
NEVER_SENT = (aiohttp.ClientConnectorError, getattr(aiohttp, "ConnectionTimeoutError", aiohttp.ServerTimeoutError))


class RasaUnavailable(Exception):
    """Rasa did not answer in time, or not at all."""


class RasaTooSlow(RasaUnavailable):
    """Rasa did not answer within the time given (it may be busy, or hung); it may still be working on the message."""


class RasaClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str | Sequence[str],
        timeout_seconds: float,
        token: str,
        max_concurrent: int = 16,
    ):
        self._session = session
        self.replicas = Replicas([base_url] if isinstance(base_url, str) else list(base_url))
        # at most this many requests in flight to each Rasa server; the rest wait their turn, within the same timeout
        self._slots = {url: asyncio.Semaphore(max(1, max_concurrent)) for url in self.replicas.urls}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._headers = {"Authorization": f"Bearer {token}"}

    @property
    def urls(self) -> List[str]:
        return list(self.replicas.urls)

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
        deadline = time.monotonic() + total
        refused = []
        for url in self.replicas.for_conversation(sender):
            try:
                replies = await self._post(url, payload, deadline, total)
            except _NeverReached as e:
                if time.monotonic() >= deadline:  # our own time ran out while connecting: no sign the server is down
                    raise RasaTooSlow(f"no Rasa server took the message within {total:g} s") from e
                # nothing was sent: the next server in this conversation's order may take it, and nothing else goes
                # to this one for a few seconds
                self.replicas.mark_down(url)
                refused.append(url)
                logger.warning("Rasa server %s refused the connection (%s); trying the next", url, e.reason)
                continue
            self.replicas.mark_up(url)
            return replies
        raise RasaUnavailable(f"no Rasa server took the message ({len(refused)} refused)")

    async def _post(self, url: str, payload: Dict[str, Any], deadline: float, total: float) -> List[Dict[str, Any]]:
        slots = self._slots[url]
        try:
            await asyncio.wait_for(slots.acquire(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError as e:
            raise RasaTooSlow("too many requests in flight to Rasa") from e
        try:
            left = max(0.1, deadline - time.monotonic())
            # no sock_read timeout: past the connect, only the total timeout (a bare asyncio.TimeoutError)
            timeout = aiohttp.ClientTimeout(total=left, sock_connect=min(left, CONNECT_SECONDS))
            async with self._session.post(
                f"{url}/webhooks/gateway/webhook", json=payload, headers=self._headers, timeout=timeout
            ) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}")
                replies = await response.json(content_type=None)
        except NEVER_SENT as e:
            raise _NeverReached(str(e) or e.__class__.__name__) from e
        except asyncio.TimeoutError as e:
            raise RasaTooSlow(f"no answer within {total:g} s") from e
        except (aiohttp.ClientError, ValueError) as e:
            raise RasaUnavailable(str(e) or e.__class__.__name__) from e
        finally:
            slots.release()
        if not isinstance(replies, list):
            raise RasaUnavailable("Rasa's reply is not a list")
        return replies

    async def healthy(self, url: str | None = None) -> bool:
        """Whether `url` answers a GET with 200; without one, whether any Rasa server does."""
        if url is None:
            return any((await self.replicas_healthy()).values())
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=HEALTH_SECONDS)) as r:
                return r.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    async def replicas_healthy(self) -> Dict[str, bool]:
        """Each Rasa server: up or not, checked side by side, each within HEALTH_SECONDS."""
        checks = await asyncio.gather(*(self.healthy(f"{url}/") for url in self.replicas.urls))
        return dict(zip(self.replicas.urls, checks, strict=True))


class _NeverReached(Exception):
    """The connection to a Rasa server was never made: the message was not sent."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
