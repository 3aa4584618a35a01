"""The deployment's secret, and what is derived from it: the token between the gateway, the action server and the
Rasa server, and the seal on a conversation's verified household.

The secret comes from ANJU_SECRET_KEY, or else from run/secret.key, which the first process to need it creates
(readable by its owner only). Every process on the machine reads the same file; several machines set the variable.

A verified household is kept in the conversation as `household|expiry|mac`: the MAC (HMAC-SHA256 with a key derived
from the secret) covers the household, the expiry and the conversation id. A value that was not sealed here, sealed
for another conversation, altered or expired opens to nothing, so whoever can write a slot still cannot skip the check.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import time
from pathlib import Path

from bot import settings as settings_module

logger = logging.getLogger(__name__)
_SEPARATOR = "|"


def secret(s: settings_module.Settings | None = None) -> bytes:
    s = s or settings_module.load()
    if s.secret_key:
        return s.secret_key.encode("utf-8")
    return _secret_file(Path(s.secret_file))


@functools.lru_cache(maxsize=8)
def _secret_file(path: Path) -> bytes:
    """Read once per process (every turn seals or opens a household): a new secret takes a restart."""
    try:
        value = path.read_bytes().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # written aside and linked into place: a process starting at the same moment reads a whole key or none
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
    try:
        os.write(fd, secrets.token_hex(32).encode("ascii"))
        os.close(fd)
        os.chmod(aside, 0o600)
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # another process made it first: theirs is the secret
    finally:
        os.unlink(aside)
    return path.read_bytes().strip()


def derived_key(purpose: str, s: settings_module.Settings | None = None) -> bytes:
    return hmac.new(secret(s), purpose.encode("utf-8"), hashlib.sha256).digest()


def rasa_token(s: settings_module.Settings | None = None) -> str:
    """What the gateway and the action server show the Rasa server's gateway channel (ANJU_RASA_TOKEN, or derived)."""
    s = s or settings_module.load()
    return s.rasa_token or derived_key("rasa-channel-token", s).hex()


def _mac(household_id: str, expiry: int, conversation_id: str, key: bytes) -> str:
    message = "\n".join((household_id, str(expiry), conversation_id)).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def seal(
    household_id: str, conversation_id: str, s: settings_module.Settings | None = None, now: float | None = None
) -> str:
    s = s or settings_module.load()
    expiry = int((time.time() if now is None else now) + s.verified_minutes * 60)
    key = derived_key("verified-household", s)
    return _SEPARATOR.join((household_id, str(expiry), _mac(household_id, expiry, conversation_id, key)))


def unseal(
    value: str | None, conversation_id: str, s: settings_module.Settings | None = None, now: float | None = None
) -> str | None:
    """The household a sealed value vouches for in this conversation, or None (no value, forged, or expired)."""
    if not value:
        return None
    parts = value.rsplit(_SEPARATOR, 2) if isinstance(value, str) else []
    if len(parts) != 3 or not parts[1].isdigit():
        logger.warning("a verified household without a seal was ignored")
        return None
    household_id, expiry, mac = parts
    key = derived_key("verified-household", s)
    if not hmac.compare_digest(_mac(household_id, int(expiry), conversation_id, key), mac):
        logger.warning("a verified household with a wrong seal was ignored")
        return None
    if int(expiry) < (time.time() if now is None else now):
        return None  # the check has run out: the resident is asked again
    return household_id
