"""Settings in one place: every value has a default that works on a laptop and can be overridden from the environment.

Contact points are settings, not knowledge: each deployment (county, community) sets its own, and the assistant names
them wherever the source gives no figure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Tuple
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else default


@dataclass(frozen=True)
class Settings:
    # the place this deployment serves; the place resolver measures work regions from here
    province: str = field(default_factory=lambda: _env("ANJU_PROVINCE", "山西省"))
    city: str = field(default_factory=lambda: _env("ANJU_CITY", "忻州市"))
    county: str = field(default_factory=lambda: _env("ANJU_COUNTY", "岢岚县"))
    # who residents are sent to; phone and hours stay empty until the office sets them: we never invent one
    service_desk: str = field(default_factory=lambda: _env("ANJU_SERVICE_DESK", "社区居委会便民服务窗口"))
    service_phone: str = field(default_factory=lambda: _env("ANJU_SERVICE_PHONE", ""))
    office_hours: str = field(default_factory=lambda: _env("ANJU_OFFICE_HOURS", ""))
    employment_contact: str = field(
        default_factory=lambda: _env("ANJU_EMPLOYMENT_CONTACT", "社区就业服务窗口或县人社部门")
    )
    education_contact: str = field(default_factory=lambda: _env("ANJU_EDUCATION_CONTACT", "县教育部门或孩子要去的学校"))
    medical_contact: str = field(default_factory=lambda: _env("ANJU_MEDICAL_CONTACT", "县医疗保障部门或社区卫生院"))
    migration_contact: str = field(default_factory=lambda: _env("ANJU_MIGRATION_CONTACT", "社区的迁出地跟进服务专柜"))
    # households, members, audit log: an SQLite file unless DATABASE_URL names another database (PostgreSQL)
    database_url: str = field(
        default_factory=lambda: _env("DATABASE_URL", f"sqlite:///{ROOT / 'run' / 'anju.sqlite3'}")
    )
    # conversations (Rasa's SQL tracker store, bot/conversations.py): empty = beside the SQLite database, or in the
    # PostgreSQL of DATABASE_URL; deleted this many days after their last message (read and checked there)
    tracker_url: str = field(default_factory=lambda: _env("ANJU_TRACKER_URL", ""))
    conversation_retention_days: str = field(default_factory=lambda: _env("ANJU_CONVERSATION_RETENTION_DAYS", "90"))
    # verification: wrong answers in a row before a lock, and how long the lock lasts
    verify_max_failures: int = field(default_factory=lambda: int(_env("ANJU_VERIFY_MAX_FAILURES", "5")))
    verify_lock_minutes: int = field(default_factory=lambda: int(_env("ANJU_VERIFY_LOCK_MINUTES", "15")))
    # the gateway (bot/app.py): the only public door; Rasa and the action server listen on 127.0.0.1
    gateway_host: str = field(default_factory=lambda: _env("ANJU_GATEWAY_HOST", "0.0.0.0"))
    gateway_port: int = field(default_factory=lambda: int(_env("ANJU_GATEWAY_PORT", "8080")))
    rasa_url: str = field(default_factory=lambda: _env("ANJU_RASA_URL", "http://127.0.0.1:5005"))
    # several Rasa servers (README: Scaling): `make run` starts ANJU_RASA_REPLICAS of them (python -m bot.layout); the
    # gateway sends each conversation to one of ANJU_RASA_URLS (comma-separated; by default ANJU_RASA_URL and the
    # ports after it, one a replica), the action server parses on any of them
    rasa_replicas: int = field(default_factory=lambda: max(1, int(_env("ANJU_RASA_REPLICAS", "1"))))
    rasa_urls_listed: Tuple[str, ...] = field(
        default_factory=lambda: tuple(u.strip() for u in _env("ANJU_RASA_URLS", "").split(",") if u.strip())
    )
    # Redis (empty: none): with several Rasa servers, their lock store (bot/layout.py); shared gateway state
    redis_url: str = field(default_factory=lambda: _env("REDIS_URL", ""))
    actions_url: str = field(default_factory=lambda: _env("ANJU_ACTIONS_URL", "http://127.0.0.1:5055"))
    # the token the gateway and the action server show the Rasa server's gateway channel; derived from the secret
    # when empty (Rasa runs without its HTTP API: nothing on the machine reaches a conversation without it)
    rasa_token: str = field(default_factory=lambda: _env("ANJU_RASA_TOKEN", ""))
    # the deployment's secret (bot/sealing.py): ANJU_SECRET_KEY, or a file made on first use, readable by its owner
    secret_key: str = field(default_factory=lambda: _env("ANJU_SECRET_KEY", ""))
    secret_file: Path = field(default_factory=lambda: Path(_env("ANJU_SECRET_FILE", str(ROOT / "run" / "secret.key"))))
    # how long a household check holds in one conversation before the resident is asked again
    verified_minutes: int = field(default_factory=lambda: int(_env("ANJU_VERIFIED_MINUTES", "30")))
    # a resident at the chat page, the kiosk or /api/chat hears back within this long (WeChat's 5 s, less the way
    # there): when Rasa has not answered by then, a polite "please send it again" instead
    reply_deadline_seconds: float = field(default_factory=lambda: float(_env("ANJU_REPLY_DEADLINE", "4.5")))
    # how long the gateway waits for Rasa where nobody is left waiting on the line: WeChat's turns (passively within
    # WECHAT_REPLY_DEADLINE, later through the service API) and the staff console's test questions
    rasa_timeout_seconds: float = field(default_factory=lambda: float(_env("ANJU_RASA_TIMEOUT", "15")))
    # throttling (bot/throttle.py): per conversation a burst, then so many a second; messages a minute from one
    # client address (0: off), and the proxies whose
    # X-Forwarded-For is believed (addresses or networks, comma-separated); requests in flight to Rasa at most
    rate_limit_burst: int = field(default_factory=lambda: int(_env("ANJU_RATE_LIMIT_BURST", "10")))
    rate_limit_per_second: float = field(default_factory=lambda: float(_env("ANJU_RATE_LIMIT_PER_SECOND", "1")))
    rate_limit_per_ip: int = field(default_factory=lambda: int(_env("ANJU_RATE_LIMIT_PER_IP", "120")))
    trusted_proxies: str = field(default_factory=lambda: _env("ANJU_TRUSTED_PROXIES", ""))
    rasa_max_concurrent: int = field(default_factory=lambda: int(_env("ANJU_RASA_MAX_CONCURRENT", "16")))
    # what one conversation may add to the staff's lists: unanswered questions kept, tickets opened a day
    max_unanswered_per_conversation: int = field(default_factory=lambda: int(_env("ANJU_MAX_UNANSWERED", "20")))
    max_tickets_per_conversation_day: int = field(default_factory=lambda: int(_env("ANJU_MAX_TICKETS_A_DAY", "3")))
    kiosk_idle_seconds: int = field(default_factory=lambda: int(_env("ANJU_KIOSK_IDLE_SECONDS", "90")))
    # WeChat Official Account (公众号) callback; empty token: /wechat refuses every request
    wechat_token: str = field(default_factory=lambda: _env("WECHAT_TOKEN", ""))
    wechat_app_id: str = field(default_factory=lambda: _env("WECHAT_APP_ID", ""))
    wechat_app_secret: str = field(default_factory=lambda: _env("WECHAT_APP_SECRET", ""))
    wechat_aes_key: str = field(default_factory=lambda: _env("WECHAT_ENCODING_AES_KEY", ""))
    wechat_api_base: str = field(default_factory=lambda: _env("WECHAT_API_BASE", "https://api.weixin.qq.com"))
    # WeChat waits 5 s for a passive reply; after this long we answer "success" and send through the service API
    wechat_reply_deadline: float = field(default_factory=lambda: float(_env("WECHAT_REPLY_DEADLINE", "4.0")))
    # the staff console: sessions end after this long without a request, and this many hours after the login however
    # active; Secure cookies whenever the request came over HTTPS, and always with ANJU_STAFF_COOKIE_SECURE=1
    staff_session_minutes: int = field(default_factory=lambda: int(_env("ANJU_STAFF_SESSION_MINUTES", "30")))
    staff_session_max_hours: float = field(default_factory=lambda: float(_env("ANJU_STAFF_SESSION_MAX_HOURS", "8")))
    staff_cookie_secure: bool = field(default_factory=lambda: _env("ANJU_STAFF_COOKIE_SECURE", "0") == "1")
    knowledge_dir: Path = field(default_factory=lambda: Path(_env("ANJU_KNOWLEDGE_DIR", str(ROOT / "knowledge"))))

    @property
    def rasa_urls(self) -> Tuple[str, ...]:
        """Every Rasa server: ANJU_RASA_URLS, or ANJU_RASA_URL and, for ANJU_RASA_REPLICAS > 1, the same address on the
        ports after it (http://127.0.0.1:5005, …:5006, …)."""
        if self.rasa_urls_listed:
            return tuple(dict.fromkeys(u.rstrip("/") for u in self.rasa_urls_listed))  # in order, each once
        first = self.rasa_url.rstrip("/")
        if self.rasa_replicas == 1:
            return (first,)
        parts = urlsplit(first)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        auth = parts.netloc.rpartition("@")[0]
        netlocs = [f"{auth + '@' if auth else ''}{host}:{port + i}" for i in range(self.rasa_replicas)]
        return tuple(urlunsplit(parts._replace(netloc=netloc)) for netloc in netlocs)

    def contact_placeholders(self) -> dict[str, str]:
        """The {placeholders} that knowledge answers may use."""
        contact = self.service_desk + (f"（电话 {self.service_phone}）" if self.service_phone else "")
        return {
            "contact": contact,
            "hours_line": f"办公时间：{self.office_hours}。" if self.office_hours else "",
            "employment_contact": self.employment_contact,
            "education_contact": self.education_contact,
            "medical_contact": self.medical_contact,
            "migration_contact": self.migration_contact,
        }


def load() -> Settings:
    """Read the settings from the environment now (tests change the environment between calls)."""
    return Settings()
