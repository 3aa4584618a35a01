"""Proving who you are before any household data: the head's name, then the last 6 characters of the head's ID number.

Both may come in one message ("张三 04291X"). A wrong answer reveals nothing, not even whether the name exists;
repeated wrong answers lock the conversation and the household for a while (settings ANJU_VERIFY_*).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Dict, List, Text, Tuple

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from bot import db, repository
from bot import settings as settings_module
from bot.privacy import VERIFICATION_CODE

logger = logging.getLogger(__name__)

# words around a name that are not the name: "户主叫张三", "我是户主张三", "名字是张三"
_NAME_FILLER = re.compile(
    r"户主(?:的)?(?:姓名|名字)?|姓名|名字|我叫|我是|叫做|叫|是|身份证(?:号)?(?:码)?|号码|后六位|后6位|最后六位|最后6位|的|"
    r"我家|俺家|俺|我|呢|啊|吧|呀|[，,。.、:：;；!！?？\s]"
)
_NAME = re.compile(r"^[\u4e00-\u9fff·•]{2,8}$")


def parse_identity(text: str) -> Tuple[str | None, str | None]:
    """(name, code) in what a resident typed; either may be None. The code is 5 digits then a digit or X."""
    text = (text or "").strip()
    codes = VERIFICATION_CODE.findall(text)
    code = codes[-1].upper() if codes else None
    rest = VERIFICATION_CODE.sub(" ", text)
    name = _NAME_FILLER.sub("", rest)
    return (name if _NAME.match(name) else None), code


def lock_message(minutes: int) -> str:
    return f"核对失败次数太多，为保护信息安全，查询已锁定，请{minutes}分钟后再试，或带身份证到社区窗口办理。"


class ValidateVerifyForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_verify_form"

    async def required_slots(
        self, domain_slots: List[Text], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Text]:
        # already verified in this session, or locked out: nothing to ask (action_household_answer explains a lock)
        if tracker.get_slot("verified_household") or tracker.get_slot("verification_locked"):
            return []
        if await asyncio.to_thread(_conversation_locked, tracker.sender_id):
            return []
        return domain_slots

    async def extract_head_name(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if tracker.latest_message.get("intent", {}).get("name") == "ask_household":
            return {}  # the question that started the form is not an answer
        name, _ = parse_identity(tracker.latest_message.get("text", ""))
        if name and tracker.get_slot("requested_slot") in (None, "head_name", "id_suffix"):
            # a name given while we ask for the code replaces the earlier one only if no code came with it
            if tracker.get_slot("requested_slot") == "head_name" or not tracker.get_slot("head_name"):
                return {"head_name": name}
        return {}

    async def extract_id_suffix(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if tracker.get_slot("requested_slot") not in (None, "head_name", "id_suffix"):
            return {}
        _, code = parse_identity(tracker.latest_message.get("text", ""))
        return {"id_suffix": code} if code else {}

    def validate_head_name(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return {"head_name": slot_value}

    async def validate_id_suffix(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        name = tracker.get_slot("head_name")
        if not name:
            # the code came first: keep it for this turn only; the name is asked next and the code again after it
            dispatcher.utter_message(text="请先告诉我户主的姓名，再输入身份证后6位。")
            return {"id_suffix": None}
        settings = settings_module.load()
        result = await asyncio.to_thread(
            _verify,
            tracker.sender_id,
            name,
            str(slot_value),
            settings.verify_max_failures,
            settings.verify_lock_minutes,
        )
        if result.household_id:
            dispatcher.utter_message(text="核对通过。")
            return {"id_suffix": None, "verified_household": result.household_id}
        if result.locked_until:
            return {"head_name": None, "id_suffix": None, "verification_locked": True}
        dispatcher.utter_message(text=f"户主姓名或身份证后6位不对，请重新核对（还可以试{result.failures_left}次）。")
        return {"head_name": None, "id_suffix": None}


def _conversation_locked(conversation_id: str) -> bool:
    with db.session_scope() as session:
        return repository.lock_of(session, [repository.conversation_key(conversation_id)]) is not None


def _verify(conversation_id: str, name: str, code: str, max_failures: int, lock_minutes: int):
    with db.session_scope() as session:
        return repository.verify_head(session, conversation_id, name, code, max_failures, lock_minutes)
