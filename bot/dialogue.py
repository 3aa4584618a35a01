"""The conversation: what the assistant says to one resident message, given what the NLU understood and what the
conversation holds so far. No framework imports: the rasa-sdk action (actions/respond.py) reads the tracker into a
`State`, calls `respond`, and turns the `Turn` back into slot events and messages.

Every path ends in at least one reply with text: an answer, an honest "the source does not say; ask X", a question
back, or a working hand-off. The identity check is a small state machine here (not a Rasa form), so that cancel
words, corrections, numerals and questions asked in the middle of it are handled at every step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Protocol, Sequence, Tuple

from bot import household_answer, rules
from bot.identity import is_cancel, parse_identity_answer
from bot.knowledge import Knowledge
from bot.settings import Settings

MISSED = ("nlu_fallback", "out_of_scope")
NOT_IN_SOURCE = "ask_not_in_source"  # near a topic, but the source says nothing about it
SOCIAL = ("greet", "goodbye", "thank", "ask_menu")
SUBSIDY_INTENTS = ("ask_subsidy_general", "ask_transport_subsidy", "ask_employment_award")
# topics that pay money out: "啥时候" about them asks when it arrives
MONEY_INTENTS = (*SUBSIDY_INTENTS, "ask_training", "ask_education_aid", "ask_workshop_support", "ask_medical")
CONTEXT_ENTITIES = ("work_region", "school_level")
TOPIC_CONFIDENCE = 0.6
# which household section a topic intent asks about (a topic question with 我家… becomes a household question)
HOUSEHOLD_SECTION = {
    "ask_subsidy_general": "subsidies",
    "ask_transport_subsidy": "subsidies",
    "ask_employment_award": "subsidies",
    "ask_school": "schools",
    "ask_medical": "medical",
    "ask_monitoring": "monitoring",
    "ask_migration_rights": "migration",
}
# the knowledge entry that answers a household-type question asked in general ("能领啥补贴" without 我家)
GENERAL_ENTRY_FOR_SECTION = {
    "subsidies": "subsidy_menu",
    "schools": "school",
    "medical": "medical",
    "monitoring": "monitoring",
    "migration": "migration_rights",
}
# who to ask about the details the source does not give (materials, where, how long), by topic
CONTACT_FOR_TOPIC = {
    "transport_subsidy": "employment_contact",
    "employment_award": "employment_contact",
    "subsidy_menu": "employment_contact",
    "training": "employment_contact",
    "job_services": "employment_contact",
    "entrepreneurship": "employment_contact",
    "school": "education_contact",
    "education_aid": "education_contact",
    "medical": "medical_contact",
    "migration_rights": "migration_contact",
}

# "我家/俺家/我们家/咱家…", or asking to have one's own records looked up
HOUSEHOLD_CUE = re.compile(
    r"(?:我|俺|额|咱|偶)(?:们)?(?:家|屋里|户)|自(?:己|个)?家|本户|查户|家里(?:人|的)|"
    r"(?:帮|给|替)(?:我|俺|额)(?:查|看|瞅)|查(?:查|一下|一查|询)?(?:我|俺|额)(?:家|的|们)"
)
CORRECTION = re.compile(
    r"^(?:不对|不是|错了|说错了|搞错了|弄错了|我说错了|打错了)?[，,。\s]*"
    r"(?:我(?:说|问|想问|是说|的意思是|指)的?是|应该是|其实是|是)(?P<new>.+)$"
)
NOT_X_BUT_Y = re.compile(r"不是(?P<old>.+?)[，,\s]*(?:而)?是(?P<new>.+)$")
INTERJECTION = r"(?:哦|噢|喔|啊|哎|哎呀|嗯|呃|唉)?[，,。\s]*"
CORRECTION_START = re.compile(
    rf"^{INTERJECTION}(?:不对|不是|错了|说错了|搞错了|弄错了|记错了|我说错了|打错了|我问的是|我说的是|我是说|应该是)"
    r"|(?:说错了|记错了|搞错了|弄错了|打错了)[了吧啊。！!\s]*$"
)
CORRECTION_MARK = re.compile(r"(?:哦|噢|啊)?(?:不对|说错了|记错了|搞错了)[，,\s]*(?:是|应该是)?")
PROCEDURE = re.compile(
    r"材料|证件|证明|带啥|带什么|手续|去哪|在哪办|哪里办|到哪|找谁|怎么办理|咋办理|怎么申请|咋申请|咋领|怎么领|"
    r"多久|多长时间|到账|啥时候|什么时候|几时"
)
# (what the resident asks, what it is called, what it is called for a topic that pays money out)
PROCEDURE_DETAILS = (
    (re.compile(r"材料|证件|证明|带啥|带什么|手续"), "要带的材料", None),
    (
        re.compile(r"去哪|在哪办|哪里办|到哪|找谁|怎么办理|咋办理|怎么申请|咋申请|咋领|怎么领"),
        "到哪里办、怎么申请",
        None,
    ),
    (re.compile(r"多久|多长时间|到账|啥时候|什么时候|几时"), "多久能办好", "多久能办好、什么时候到账"),
)
SOLVED = re.compile(r"(?:问题)?(?:已经)?解决了|搞定了|办好了|弄好了|不用(?:人工|工作人员|转人工)了|已经好了|没事了")
PERSON_WORDS = re.compile(
    r"爱人|老伴|媳妇|老婆|婆姨|丈夫|老公|男人|老汉|儿子|闺女|女儿|孙子|孙女|孩子|娃|老人|我妈|我爸|俺妈|俺爸|父亲|母亲"
)
WORK_CUE = re.compile(
    r"打工|务工|上班|上.{0,8}班|干活|做工|挣钱|营生|干了|干满|就业|工作|寻个活|找活|零工|当|干|收银|开车|跑车|跑运输"
)
ASKING = re.compile(
    r"多久|多长|多少|钱|谁|咋|怎么|怎样|能不能|能|吗|呢|啥|什么|哪|几|够不够|行不行|有没有|没$|不$|没有$|报不报|给不给"
)
HUMAN = re.compile(
    r"转个?人工|人工客服|人工服务|找(?:个|你们的)?工作人员|要(?:找)?真人|真人(?:客服|来)|跟真人|转过去|接人工|"
    r"(?:叫|来|派)个人(?:来)?帮|有人帮(?:俺|我|忙)|能不能有人|有没有人(?:能)?帮|找个?人帮|不识字"
)
# a question of the form 多不多 / 要不要 / 是不是
A_NOT_A = re.compile(r"(\w)不\1")
# after the hand-off: "等了半天没人理" is about the wait, not a question to answer
WAITING = re.compile(r"等了|等半天|没人理|没人回|没人管|还没人|咋还不回|怎么还不回|怎么还没回|啥时候回|什么时候回")
CONDITION = re.compile(r"干(?:够|满|了)?多久|要干|满多久|够多久|干几个月|几个月才")
FOLLOW_UP_WRAP = re.compile(
    r"^(?:那|那么|那要是|要是|还有|再说说|再问问)|(?:呢|嘞|咧|哩|的事|的情况|也看看|也说说|咋样|怎么样)$"
)
WHO_LINE = re.compile(r"物业|网格员|专柜|找|联系|请到|请问")
JOINED_HAN = re.compile(r"(?<=^[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff]{1,2}(?:$|[\s，,]))")
GREETING_PREFIX = re.compile(
    r"^(?:喂+|你好|您好|哎+|那个|请问|我想问问|我想问一下|俺想问问|问一下|打听一下|同志)+[，,。\s]*"
)
REGION_LITERALS = ((r"省外|外省|出省", "省外"), (r"省内|县外|外县|省城", "县外省内"), (r"县内|县里|县城|本县", "县内"))
FOLLOW_ASK = re.compile(
    r"多少|钱|给|领|谁管|谁来管|找谁|咋办|怎么办|咋整|咋弄|怎么弄|怎么整|多久|能不能|够不够|行不行|报不报|给不给|有没有|能领|能报|呢$|不$|没$"
)
# a message of a few digits and nothing else (not a verification code: that is 6 characters, inside the check)
ONLY_DIGITS = re.compile(r"^[0-9０-９]{1,3}[。.！!？?\s]*$")
PICK_IN_WORDS = "请直接说您想问的事，比如“交通补贴”“孩子上学”“看病报销”，或者点下面的按钮。"
MENU_PICKS = ["交通补贴", "就业奖补", "上学划片", "医保", "能问什么"]
DETAILS = re.compile(r"详细说说|详细点|详细讲|具体说说|具体讲讲|展开说说|说详细|多说点|全部说说|都说说|再详细")
ACKNOWLEDGED = re.compile(
    r"^(?:好+|好的|好嘞|好哩|行|行了|中|嗯+|哦+|知道了|晓得了|明白了|懂了|收到|了解了)[，,。.!！\s]*"
    r"(?:知道了|晓得了|明白了|懂了|收到了?|了解了|好的|行)?[。.!！\s]*$"
)
OUT_OF_SCOPE_WORDS = re.compile(r"运势|算命|算卦|彩票|星座|属相|股票|天气|下雨|下雪|气温|冷不冷|热不热|减肥")
NOT_IN_SOURCE_WORDS = re.compile(
    r"迁户口|户口.{0,6}迁|老年证|暖气费|取暖费|取暖补|暖气补|供暖费|公积金|医保卡|房产证|不动产证|"
    r"几点上班|几点下班|几点开门|营业时间|上班时间"
)
LOOKUP = re.compile(r"查|看看|瞅瞅|瞧瞧|帮忙看")
SELF_WORDS = re.compile(r"^(?:我|俺|额|咱|偶)")
CLAUSE_BREAK = re.compile(r"[，,。！!？?；;\s]+|还有|另外|再问一下|再问问|顺便问一下|顺便问问|顺便问")
REGION_WORDS = {"县内": "在县里", "县外省内": "在省内县外", "省外": "在省外"}


def region_named(text: str) -> Dict[str, str]:
    """A work region named by its own word ("省外的给多少"), when the place resolver found no place."""
    for pattern, region in REGION_LITERALS:
        if re.search(pattern, text or ""):
            return {"work_region": region}
    return {}


@dataclass(frozen=True)
class Understood:
    """What the NLU made of one piece of text."""

    text: str
    intent: str
    confidence: float = 1.0
    entities: Mapping[str, str] = field(default_factory=dict)
    ranking: Tuple[str, ...] = ()
    chitchat: str | None = None  # the retrieval response the ResponseSelector picked ("utter_chitchat/ask_name")

    @classmethod
    def from_parse_data(cls, data: Mapping[str, Any]) -> Understood:
        intent = data.get("intent") or {}
        entities: Dict[str, str] = {}
        for entity in data.get("entities") or []:
            kind = entity.get("entity")
            if kind in CONTEXT_ENTITIES and kind not in entities and entity.get("value"):
                entities[kind] = str(entity["value"])
        chitchat = (((data.get("response_selector") or {}).get("chitchat") or {}).get("response") or {}).get(
            "utter_action"
        )
        return cls(
            text=str(data.get("text") or ""),
            intent=str(intent.get("name") or "nlu_fallback"),
            confidence=float(intent.get("confidence") or 0.0),
            entities=entities,
            ranking=tuple(str(r.get("name")) for r in data.get("intent_ranking") or [] if r.get("name")),
            chitchat=chitchat,
        )


@dataclass(frozen=True)
class State:
    """What the conversation holds between messages (Rasa slots)."""

    topic: str | None = None
    work_region: str | None = None
    school_level: str | None = None
    verify_step: str | None = None  # "name": the check is waiting for the head's name and code; "code": for the code
    head_name: str | None = None
    pending_question: str | None = None  # the household question waiting for the check
    verified_household: str | None = None
    household_topics: str | None = None  # the sections of the last household answer, for "那我爱人呢"
    misses: int = 0
    asides: int = 0  # messages in a row, while the check waits, that were something else: two, and it is dropped


@dataclass(frozen=True)
class Reply:
    text: str = ""
    buttons: Tuple[Tuple[str, str], ...] = ()  # (title, payload)
    response: str | None = None  # a domain response to utter instead of text (chitchat)


@dataclass
class Turn:
    replies: List[Reply]
    state: State


class Services(Protocol):
    """What a conversation needs from the outside world (bot.dialogue_services implements it on the database)."""

    def ticket_open(self) -> bool: ...
    def copy_to_ticket(self, text: str) -> None: ...
    def open_ticket(self, household_id: str | None) -> bool: ...  # False: this conversation's tickets are used up
    def close_ticket(self) -> None: ...
    def log_unanswered(self, text: str, intent: str, topic: str) -> None: ...
    def conversation_locked(self) -> bool: ...
    def verify(self, name: str, code: str) -> Any: ...  # bot.repository.VerificationResult
    def household(self, household_id: str, shown: Sequence[str]) -> Tuple[Any, rules.HouseholdFacts] | None: ...
    def member_names(self, household_id: str) -> Sequence[str]: ...
    def remember_code(self, code: str | None) -> None: ...
    def recall_code(self) -> str | None: ...


Parse = Callable[[str], Understood | None]


class Conversation:
    """One resident message, answered. `parse` understands a piece of the message (a clause or a correction)."""

    def __init__(
        self,
        kb: Knowledge,
        settings: Settings,
        services: Services,
        parse: Parse,
        policy: rules.PolicyFacts,
        faq: Any = None,  # bot.faq.FaqIndex over the same knowledge, for questions the classifier was unsure of
    ):
        self.kb = kb
        self.faq = faq
        self.s = settings
        self.services = services
        self.parse = parse
        self.policy = policy
        self.placeholders = settings.contact_placeholders()
        self.topic_intents = {e.intent for e in kb.entries.values() if e.is_topic}

    # ------------------------------------------------------------------ the entry point

    def respond(self, said: str, understood: Understood, state: State) -> Turn:
        said = (said or "").strip()
        ticket = self.services.ticket_open()
        if ticket:
            self.services.copy_to_ticket(said)
            if SOLVED.search(said):
                self.services.close_ticket()
                return Turn([Reply("好的，这次人工服务已结束，工单已关闭。还有问题随时问我。")], state)
            if WAITING.search(said):
                return Turn([Reply("抱歉让您久等了，工作人员看到就会回复您。"), Reply(self._staff_will_reply())], state)
        # "不是我是我儿子" corrects who is meant; the NLU may read its 不是 as "stop"
        forget = understood.intent == "forget_verification" and not NOT_X_BUT_Y.search(said)
        if forget or is_cancel(said):
            return self._cancel(state)
        if ONLY_DIGITS.match(said) and not state.verify_step:
            # "1" / "2" under the menu: nothing is numbered; asked in words, never waved goodbye
            return Turn([Reply(PICK_IN_WORDS, self._buttons(MENU_PICKS))], state)
        if state.verify_step:
            turn = self._in_identity_check(said, understood, state)
        else:
            turn = self._answer(said, understood, state)
        if ticket and understood.intent != "request_human":
            turn.replies.append(Reply(self._staff_will_reply()))
        if not any(r.text or r.response for r in turn.replies):  # never silent, whatever happened above
            turn.replies.append(Reply(self._reply("nlu_fallback").text))
        return turn

    # ------------------------------------------------------------------ identity check

    def _cancel(self, state: State) -> Turn:
        if state.verified_household:
            text = "已退出，刚才的核对信息已清除。您可以接着问别的，比如补贴、上学、看病。"
        elif state.verify_step:
            text = "好的，不查了，核对信息没有保留。您可以接着问别的，比如补贴、上学、看病。"
        else:
            text = "好的，已取消，没有保留任何核对信息。有别的事随时问我。"
        cleared = replace(
            state,
            verify_step=None,
            head_name=None,
            pending_question=None,
            verified_household=None,
            household_topics=None,
            asides=0,
        )
        return Turn([Reply(text, self._buttons(["能问什么", "转人工"]))], cleared)

    def _start_identity_check(self, said: str, state: State) -> Turn:
        if self.services.conversation_locked():
            return Turn([Reply(self._lock_text())], replace(state, verify_step=None, head_name=None))
        answer = parse_identity_answer(said)
        state = replace(state, verify_step="name", pending_question=said, head_name=answer.name or None, asides=0)
        if answer.name and answer.code:
            return self._verify(answer.name, answer.code, state, answer.full_id_given)
        if answer.name:
            return Turn([Reply(self._ask_code(answer.name))], replace(state, verify_step="code"))
        return Turn([Reply(self._ask_name_and_code())], state)

    def _in_identity_check(self, said: str, understood: Understood, state: State) -> Turn:
        if HUMAN.search(said):
            return self._hand_off(state)
        answer = parse_identity_answer(JOINED_HAN.sub("", said))
        if answer.name or answer.code:
            state = replace(state, asides=0)  # back to the check
        name = answer.name or state.head_name
        code = answer.code or (self.services.recall_code() if answer.name else None)
        if code and name:
            self.services.remember_code(None)
            return self._verify(name, code, replace(state, head_name=name), answer.full_id_given)
        if answer.code:
            # a code before the name: kept in the action server's memory for a few minutes, never stored
            self.services.remember_code(answer.code)
            return Turn([Reply("收到后6位了。还差户主的姓名：请告诉我户主叫什么。")], state)
        if answer.name:
            return Turn([Reply(self._ask_code(answer.name))], replace(state, head_name=answer.name, verify_step="code"))
        if understood.intent == "ask_household":
            return Turn(
                [Reply(self._ask_name_and_code() if not state.head_name else self._ask_code(state.head_name))], state
            )
        if understood.intent in SOCIAL and understood.confidence >= TOPIC_CONFIDENCE and len(said) <= 8:
            # 谢谢 / 好的再见 in the middle of the check: answered as such; a goodbye ends the check
            reply = self._as_reply(self._reply(understood.intent), said)
            if understood.intent == "goodbye":
                return Turn([reply], self._check_dropped(state))
            return Turn([reply, Reply(self._resume_hint(state), self._buttons(["算了"]))], state)
        # not an answer to the check: a question in between (or something told at length) is answered, and the
        # check waits; the second such message in a row means the resident moved on, and the check is dropped
        if (
            self._is_question(understood)
            or PROCEDURE.search(said)
            or ASKING.search(said)
            or A_NOT_A.search(said)
            or len(said) > 8
        ):
            turn = self._answer(said, understood, replace(state, verify_step=None))
            if turn.state.verify_step:  # the aside was a household question: its own check now
                turn.state = replace(turn.state, asides=0)
                return turn
            if state.asides >= 1:
                turn.state = self._check_dropped(turn.state)
                return turn
            turn.state = replace(
                turn.state, verify_step=state.verify_step, head_name=state.head_name, asides=state.asides + 1
            )
            if not turn.state.verified_household:
                turn.replies.append(Reply(self._resume_hint(state), self._buttons(["算了"])))
            return turn
        text = (
            "没认出户主姓名和身份证后6位。请直接发，比如：张三 123456（后6位可以打数字，也可以说“一二三四五六”）。"
            "不想查了请说“算了”。"
        )
        return Turn([Reply(text, self._buttons(["算了", "转人工"]))], state)

    @staticmethod
    def _check_dropped(state: State) -> State:
        return replace(state, verify_step=None, head_name=None, pending_question=None, asides=0)

    def _verify(self, name: str, code: str, state: State, full_id_given: bool = False) -> Turn:
        result = self.services.verify(name, code)
        note = "（完整身份证号我只用了最后6位，不会保存。）" if full_id_given else ""
        if result.household_id:
            verified = replace(state, verify_step=None, head_name=None, verified_household=result.household_id)
            question = state.pending_question or ""
            turn = self._household(question, verified, household_answer.topics_of(question))
            turn.replies.insert(0, Reply("核对通过。" + note))
            return turn
        if result.locked_until:
            return Turn(
                [Reply(self._lock_text())],
                replace(state, verify_step=None, head_name=None, pending_question=None),
            )
        text = (
            f"户主姓名或身份证后6位不对，请再核对一下（还可以试{result.failures_left}次）。{note}\n"
            f"可以只重新发身份证最后6位，也可以把姓名和后6位一起重发；户主名字说错了，直接说对的名字就行。"
        )
        return Turn([Reply(text, self._buttons(["算了", "转人工"]))], replace(state, verify_step="code"))

    def _ask_name_and_code(self) -> str:
        return (
            "查您家的信息前，要先核对身份。请告诉我户主的姓名和户主身份证号的后6位，可以一起发，比如：张三 123456。"
            "不想查了请说“算了”。"
        )

    @staticmethod
    def _ask_code(name: str) -> str:
        return f"好的，户主{name}。请输入户主身份证号的最后6位（就是后6位，数字，最后一位可能是X）。"

    @staticmethod
    def _resume_hint(state: State) -> str:
        wanted = "身份证后6位" if state.head_name else "户主姓名和身份证后6位"
        return f"刚才查您家的核对还没完成：接着查请发{wanted}；不查了请说“算了”。"

    def _lock_text(self) -> str:
        minutes = self.s.verify_lock_minutes
        return f"核对失败次数太多，为保护信息安全，查询已锁定，请{minutes}分钟后再试，或带身份证到社区窗口办理。"

    # ------------------------------------------------------------------ answering

    def _answer(self, said: str, understood: Understood, state: State) -> Turn:
        if understood.confidence < 0.7 and understood.ranking[1:2] == ("out_of_scope",):
            understood = replace(understood, intent="out_of_scope")  # unsure, and the runner-up is out of scope
        if state.topic and DETAILS.search(said) and len(said) <= 12:
            return self._topic(self.kb.entries[state.topic].intent, {}, state, said, detailed=True)
        correction = self._correction(said) if (state.topic or state.work_region or NOT_X_BUT_Y.search(said)) else None
        if correction is not None:
            return self._corrected(correction, understood, state)
        if OUT_OF_SCOPE_WORDS.search(said):
            understood = replace(understood, intent="out_of_scope")
        elif NOT_IN_SOURCE_WORDS.search(said) and self.kb.for_intent(NOT_IN_SOURCE) is not None:
            understood = replace(understood, intent=NOT_IN_SOURCE)  # the source says nothing about these
        understood = self._entity_fits(understood)
        if ACKNOWLEDGED.match(said):
            return Turn([Reply("好的。还有别的事，随时问我。", self._buttons(["能问什么"]))], replace(state, misses=0))
        asks_procedure = bool(state.topic) and self._asks_procedure(said)
        if understood.intent == "chitchat" and not HUMAN.search(said) and not asks_procedure:
            response = understood.chitchat or "utter_chitchat/ask_name"
            return Turn([Reply(response=response)], replace(state, misses=0))
        if (
            state.topic
            and self._asks_procedure(said)
            and len(said) <= 6
            and not HUMAN.search(said)
            and not (self._is_new_topic(understood, state) and self._names_a_topic(said))  # "找工作该找谁" after 积分
        ):
            return self._procedure(said, state)  # "找谁" / "去哪办" after an answer asks about that answer
        if understood.intent == "request_human" or HUMAN.search(said):
            return self._hand_off(state)
        if understood.intent in SOCIAL and understood.confidence >= 0.8 and len(said) <= 8 and not ASKING.search(said):
            return Turn([self._as_reply(self._reply(understood.intent), said)], replace(state, misses=0))
        if understood.intent == NOT_IN_SOURCE and self.kb.for_intent(NOT_IN_SOURCE) is not None:
            # next to a topic but outside the source: say so, name who to ask, and let staff see the demand
            self.services.log_unanswered(said, "not_in_source", self._topic_guess(understood))
            reply = self._as_reply(self._reply(NOT_IN_SOURCE), said)
            return Turn([reply], replace(state, misses=0))
        multi = self._several(said, understood, state)
        if multi is not None:
            return multi
        if self._about_household(said, understood, state):
            return self._household_question(said, understood, state)
        if understood.intent == "ask_household" and not self._short_follow_up(said, understood, state):
            return self._general_for_household_question(said, state)
        if understood.intent == "inform":
            answer = parse_identity_answer(said)
            if answer.name and answer.code:
                return self._start_identity_check(said, state)
        if state.topic and self._asks_procedure(said) and not self._is_new_topic(understood, state):
            return self._procedure(said, state)
        if (
            state.topic
            and PERSON_WORDS.search(said)
            and understood.intent != "out_of_scope"
            and not self._is_new_topic(understood, state)
        ):
            return self._about_someone_else(said, understood, state)
        wrapped = FOLLOW_UP_WRAP.search(said) and state.topic
        if understood.intent != "out_of_scope" and (understood.intent in ("follow_up", "nlu_fallback") or wrapped):
            named = self._named_topic(said, understood)
            if named is not None:
                return self._topic(named.intent, {**self._inherited(named, state, said), **named.entities}, state)
        if understood.intent in MISSED and self._short_follow_up(said, understood, state):
            return self._follow_up(understood, state)
        if understood.intent == "nlu_fallback":
            rescued = self._rescued(said, understood)
            if rescued == NOT_IN_SOURCE:
                return self._answer(said, replace(understood, intent=NOT_IN_SOURCE), state)
            if rescued is not None:
                return self._topic(rescued, understood.entities, state)
        if understood.intent in MISSED:
            situation = understood.entities.get("work_region")
            # "他在外省" answering "儿子在哪里干活？" after a subsidy answer is a situation too, without 打工
            told_where = bool(state.topic) and "work_region" in self.kb.entries[state.topic].variants and len(said) <= 8
            if situation and (WORK_CUE.search(said) or told_where) and not state.misses:
                return self._topic(self._subsidy_entry_for(situation), {"work_region": situation}, state)
            return self._missed(said, understood, state)
        if understood.intent == "follow_up" or self._short_follow_up(said, understood, state):
            if state.misses and not state.topic:  # "太原呢" after an out-of-scope question is still out of scope
                return self._missed(said, replace(understood, intent="out_of_scope"), state)
            return self._follow_up(understood, state)
        if understood.intent in self.topic_intents:
            entities = {**self._inherited(understood, state, said), **understood.entities}
            if understood.intent == "ask_subsidy_general" and "work_region" not in entities:
                return self._general_for_household_question(said, state)
            if understood.intent == "ask_subsidy_general":
                return self._topic(self._subsidy_entry_for(entities["work_region"]), entities, state)
            return self._topic(understood.intent, entities, state)
        if understood.intent in SOCIAL and state.topic and len(said) > 8 and ASKING.search(said):
            return self._follow_up(understood, state)  # "那再干一个月就够了吧 给多少" asks, it does not say goodbye
        if understood.intent in SOCIAL:
            reply = self._reply(understood.intent)
            return Turn([self._as_reply(reply, said)], replace(state, misses=0))
        return self._missed(said, understood, state)

    def _rescued(self, said: str, understood: Understood) -> str | None:
        """A question the classifier was unsure of: answered when the model's best topic guess and a keyword search
        over the knowledge (BM25, bot.faq) agree, or the keyword match is very strong. Never for out-of-scope."""
        stripped = GREETING_PREFIX.sub("", said).strip()
        if stripped and stripped != said.strip():
            parsed = self.parse(stripped)
            if parsed is not None and parsed.intent in self.topic_intents and parsed.confidence >= TOPIC_CONFIDENCE:
                return parsed.intent
        if understood.ranking[1:2] == (NOT_IN_SOURCE,) and self.kb.for_intent(NOT_IN_SOURCE) is not None:
            return NOT_IN_SOURCE
        guess = self.kb.for_intent(understood.ranking[1]) if len(understood.ranking) > 1 else None
        confirmed = [kind for kind in understood.entities if guess is not None and kind in guess.variants]
        if confirmed and guess.is_topic:
            # "县外省内是给三百不": the place confirms the model's runner-up ("去北京的火车票" names no work or region)
            if confirmed != ["work_region"] or WORK_CUE.search(said) or region_named(said):
                return guess.intent
        if self.faq is None or "out_of_scope" in understood.ranking[:2]:
            return None
        hits = self.faq.search(said, limit=2)
        if not hits or hits[0].score < 12 or (len(hits) > 1 and hits[1].score > 0.7 * hits[0].score):
            return None
        entry = self.kb.entries.get(hits[0].entry_id)
        if entry is None or not entry.is_topic:
            return None
        if entry.intent in understood.ranking[:4] or hits[0].score >= 18:
            return entry.intent
        return None

    def _entity_fits(self, understood: Understood) -> Understood:
        """An entity picks the topic: 初中 in "娃上初中咋弄" (read as 教育帮扶) means the school answer."""
        entry = self.kb.for_intent(understood.intent)
        if entry is None or not entry.is_topic or not understood.entities:
            return understood
        if any(kind in entry.variants for kind in understood.entities):
            return understood
        for name in understood.ranking[1:3]:
            other = self.kb.for_intent(name)
            if other is not None and other.is_topic and any(kind in other.variants for kind in understood.entities):
                if set(understood.entities) != {"work_region"}:  # places are everywhere; school levels are not
                    return replace(understood, intent=name)
        return understood

    def _inherited(self, understood: Understood, state: State, said: str) -> Dict[str, str]:
        """A short question without a place inherits the last place ("给多少钱" after "在县城干了半年了")."""
        entry = self.kb.for_intent(understood.intent)
        if understood.intent == "ask_subsidy_general" and state.work_region and len(said) <= 12:
            return {"work_region": state.work_region}
        if entry and "work_region" in entry.variants and state.work_region and len(said) <= 12:
            return {"work_region": state.work_region}
        return {}

    def _named_topic(self, said: str, understood: Understood) -> Understood | None:
        """ "那日间照料呢" / "那医疗救助呢": the topic named in a follow-up, understood without the 那…呢 around it."""
        core = FOLLOW_UP_WRAP.sub("", said).strip()
        if not core or core == said.strip() and understood.intent == "follow_up" and understood.entities:
            return None
        parsed = self.parse(core) if core != said.strip() else None
        for candidate in (parsed, understood):
            if candidate is None:
                continue
            if candidate.intent in self.topic_intents and candidate.confidence >= 0.5:
                return candidate
        ranked = next((name for name in understood.ranking if name in self.topic_intents), None)
        if ranked and understood.intent == "follow_up" and not understood.entities and len(core) >= 2:
            return Understood(core, ranked, 0.5, {})
        return None

    @staticmethod
    def _names_a_topic(said: str) -> bool:
        """More than the procedure words: "找工作该找谁" names work; "找谁办" / "在哪里办" name nothing."""
        return len(PROCEDURE.sub("", said).strip("办理了呀啊呢吗嘛该要去在？?。.！! ")) >= 2

    @staticmethod
    def _asks_procedure(said: str) -> bool:
        # "要干满多久" asks about the condition (3 months), not about how long the office takes
        return bool(PROCEDURE.search(said)) and not CONDITION.search(said)

    def _is_question(self, understood: Understood) -> bool:
        return (
            understood.intent in self.topic_intents
            or understood.intent in SOCIAL
            or understood.intent == "request_human"
        ) and understood.confidence >= TOPIC_CONFIDENCE

    def _is_new_topic(self, understood: Understood, state: State) -> bool:
        """A confident question about another topic. Among the subsidies ("给多少钱" after the award may read as the
        transport subsidy) only from a topic that is not a subsidy: "交通补贴省外多少" after 摆摊 is a new question."""
        entry = self.kb.for_intent(understood.intent)
        current = self.kb.entries.get(state.topic) if state.topic else None
        among_subsidies = understood.intent in SUBSIDY_INTENTS and (
            current is None or current.intent in SUBSIDY_INTENTS
        )
        return bool(
            entry is not None
            and entry.is_topic
            and entry.id != state.topic
            and understood.confidence >= 0.85
            and not among_subsidies
        )

    def _short_follow_up(self, said: str, understood: Understood, state: State) -> bool:
        """ "给多少钱" / "那省内呢" right after an answer: too short to be a new question of its own."""
        if not state.topic or len(said) > 8 or not ASKING.search(said):
            return False
        if understood.intent in MISSED and not FOLLOW_ASK.search(said):
            return False  # "明天会下雨吗" is short and asks, but not about the topic
        if understood.entities and not self._is_new_topic(understood, state):
            return True
        if understood.intent in SOCIAL and FOLLOW_ASK.search(said):
            return True  # "这个能领多少钱" after an answer is not a question about the menu
        return understood.intent in ("ask_subsidy_general", "ask_household") or understood.confidence < 0.7

    def _topic(
        self,
        intent: str,
        entities: Mapping[str, str],
        state: State,
        said: str = "",
        detailed: bool = False,
        lookup: bool = False,
    ) -> Turn:
        """The entry's answer. The subsidy list, and any general answer to a household-type question (`lookup`),
        offer to look up one's own household."""
        asked = self.kb.for_intent(intent)
        again = asked is not None and asked.id == state.topic
        # the first answer is short; asking about the same topic again gets the whole of it
        reply = self.kb.reply(intent, entities, state.topic, self.placeholders, detailed=detailed or again)
        entry = self.kb.entries[reply.entry_id]
        new_state = replace(state, misses=0, **self._context(entities))
        if entry.is_topic:
            new_state = replace(new_state, topic=entry.id)
        out = self._as_reply(reply, said)
        if (lookup or entry.id == GENERAL_ENTRY_FOR_SECTION["subsidies"]) and not state.verified_household:
            text = out.text + "\n想查您自己家的情况，点“查我家的情况”。"
            out = Reply(text, (("查我家的情况", "查我家的情况"),) + out.buttons)
        return Turn([out], new_state)

    def _follow_up(self, understood: Understood, state: State) -> Turn:
        entities = dict(understood.entities) or region_named(understood.text)
        current = self.kb.entries.get(state.topic or "")
        if current is not None and current.id == "subsidy_menu" and "work_region" in entities:
            return self._topic(self._subsidy_entry_for(entities["work_region"]), entities, state)
        if current is not None and set(entities) == {"work_region"} and "work_region" not in current.variants:
            if not WORK_CUE.search(understood.text):  # "宋家沟移民新村呢" after the settlements: the same topic
                return self._topic(current.intent, {}, state)
        if current is not None and not entities:
            for kind in CONTEXT_ENTITIES:
                value = getattr(state, kind)
                if value and value in current.variants.get(kind, {}):
                    entities[kind] = value
        if current is not None and not understood.entities and understood.intent != "follow_up":
            return self._topic(current.intent, entities, state)
        return self._topic("follow_up", entities, state)

    def _procedure(self, said: str, state: State) -> Turn:
        entry = self.kb.entries[state.topic]
        pays = entry.intent in MONEY_INTENTS  # 上学 or 养老 is arranged, not paid out: nothing to arrive
        asked = [
            (money if pays and money else label) for pattern, label, money in PROCEDURE_DETAILS if pattern.search(said)
        ]
        wanted = "、".join(asked) or "具体怎么办"
        contact = self.placeholders.get(CONTACT_FOR_TOPIC.get(entry.id, "contact"), self.placeholders["contact"])
        answer = self.kb.reply(entry.intent, {}, None, self.placeholders).text
        who = next((line.strip("· ") for line in answer.splitlines() if WHO_LINE.search(line)), "")
        text = (
            f"关于“{entry.title}”{wanted}，县里的报道没有写，我不能乱说。请问{contact}，"
            f"按您家的情况问清楚，以他们的答复为准。{self.placeholders['hours_line']}"
        )
        if who and contact not in who:
            text += f"\n报道里写到的是：{who}"
        return Turn([Reply(text.strip(), self._buttons([entry.title, "转人工"]))], replace(state, misses=0))

    def _about_someone_else(self, said: str, understood: Understood, state: State) -> Turn:
        """ "那我爱人呢" / "孩子念书呢" after a general answer: the same topic for that person."""
        sections = household_answer.topics_of(said)
        if len(sections) == 1 and sections[0] in GENERAL_ENTRY_FOR_SECTION:
            entry_id = GENERAL_ENTRY_FOR_SECTION[sections[0]]
            if entry_id != state.topic:
                return self._topic(self.kb.entries[entry_id].intent, understood.entities, state)
        entry = self.kb.entries[state.topic]
        if "work_region" in entry.variants and "work_region" not in understood.entities and state.work_region:
            if re.search(r"也|一起|那儿|那里|在那|同一", said):
                months = re.search(r"(\d+|俩|两|半)个?多?月", said)
                entry_id = self._subsidy_entry_for(state.work_region)
                turn = self._topic(entry_id, {"work_region": state.work_region}, state)
                if months and state.work_region == "县内":
                    note = "按报道，县内就近就业累计3个月以上、符合条件的，才能申请就业奖补；不满3个月的，干满了再问。"
                    turn.replies.insert(0, Reply(note))
                return turn
        if "work_region" in entry.variants and "work_region" not in understood.entities:
            who = PERSON_WORDS.search(said).group(0)
            text = f"{who}在哪里干活？在县里、在省内别的县市，还是在省外？告诉我地方，我说说能领什么。"
            buttons = (("在县里干活", "在县里干活"), ("在省内别的地方", "在省内别的地方打工"), ("在省外", "在省外打工"))
            return Turn([Reply(text, buttons)], replace(state, misses=0))
        return self._topic(entry.intent, understood.entities, state)

    def _general_for_household_question(self, said: str, state: State) -> Turn:
        """A household-type question without 我家…: answered in general, with a button to look up one's own."""
        sections = household_answer.topics_of(said)
        entry_id = GENERAL_ENTRY_FOR_SECTION.get(sections[0], "subsidy_menu") if len(sections) == 1 else "menu"
        return self._topic(self.kb.entries[entry_id].intent, {}, state, said, lookup=True)

    def _missed(self, said: str, understood: Understood, state: State) -> Turn:
        intent = understood.intent if understood.intent in MISSED else "nlu_fallback"
        self.services.log_unanswered(said, intent, self._topic_guess(understood))
        misses = state.misses + 1
        reply = self._reply(intent)
        out = self._as_reply(reply, said)
        if misses >= 2 and not self.services.ticket_open():
            text = out.text + "\n我好像没帮上忙。要不要转给工作人员？点“转人工”，工作人员会在这里回复您。"
            buttons = (("转人工", "/request_human"),) + tuple(b for b in out.buttons if b[0] != "转人工")
            out = Reply(text, buttons)
        return Turn([out], replace(state, misses=misses))

    def _hand_off(self, state: State) -> Turn:
        if not self.services.open_ticket(state.verified_household):
            phone = self.s.service_phone
            where = f"请打{phone}或到{self.s.service_desk}" if phone else f"请到{self.s.service_desk}"
            text = f"您今天已经转过几次人工了，之前的留言工作人员都看得到，会在这里回复您。着急的话{where}。"
            return Turn([Reply(text)], replace(state, misses=0))
        text = self._reply("request_human").text
        text += "\n已经帮您转给工作人员，工作人员会在这里直接回复您。等的时候，您也可以接着问我。"
        return Turn([Reply(text)], replace(state, misses=0))

    def _staff_will_reply(self) -> str:
        phone, hours = self.s.service_phone, self.s.office_hours
        where = f"着急可以打{phone}" if phone else f"也可以到{self.s.service_desk}"
        return (
            f"（您的消息已转给工作人员，他们也会在这里回复您；{where}"
            + (f"，办公时间{hours}" if hours else "")
            + "。）"
        )

    # ------------------------------------------------------------------ households

    def _about_household(self, said: str, understood: Understood, state: State) -> bool:
        if said.startswith("/ask_household"):  # the kiosk's and the menu's "查我家能领什么" button
            return True
        if HOUSEHOLD_CUE.search(said):
            return (
                understood.intent in ("ask_household", "inform", "follow_up")
                or (understood.intent in HOUSEHOLD_SECTION and understood.intent != "ask_migration_rights")
                or (understood.intent == "ask_migration_rights" and LOOKUP.search(said))
                or understood.intent in MISSED
            )
        if state.verified_household and state.household_topics:
            # "那我爱人呢" / "孩子念书呢" / "王桂兰的奖补呢" / "医保呢" after a household answer
            if PERSON_WORDS.search(said) or understood.intent == "ask_household":
                return True
            if any(name in said for name in self.services.member_names(state.verified_household)):
                return True
            short = len(FOLLOW_UP_WRAP.sub("", said)) <= 6
            return short and len(household_answer.topics_of(said)) < len(household_answer.SECTIONS)
        return False

    def _household_question(self, said: str, understood: Understood, state: State) -> Turn:
        if not state.verified_household:
            return self._start_identity_check(said, state)
        sections = household_answer.topics_of(said)
        if len(sections) == len(household_answer.SECTIONS) and understood.intent in HOUSEHOLD_SECTION:
            sections = [HOUSEHOLD_SECTION[understood.intent]]
        named = any(name in said for name in self.services.member_names(state.verified_household))
        if (
            len(sections) == len(household_answer.SECTIONS)
            and state.household_topics
            and (PERSON_WORDS.search(said) or named)
        ):
            sections = state.household_topics.split(",")
        return self._household(said, state, sections)

    def _household(self, question: str, state: State, sections: Sequence[str]) -> Turn:
        found = self.services.household(state.verified_household or "", list(sections))
        if found is None:
            text = f"没有找到您家的记录，可能台账已更新。请到{self.s.service_desk}核实。"
            return Turn([Reply(text)], replace(state, verified_household=None))
        household, facts = found
        only = household_answer.members_named(question, facts) if PERSON_WORDS.search(question) else []
        only = only or [m.name for m in facts.members if m.name and m.name in question]
        source = self.kb.sources.get("kelan-2022")
        source_line = f"（依据：{source['short']}）" if source else ""
        text = household_answer.render(household, facts, self.policy, sections, self.s, only, source_line=source_line)
        buttons = (("退出", "/forget_verification"),)
        return Turn([Reply(text, buttons)], replace(state, household_topics=",".join(sections), misses=0))

    # ------------------------------------------------------------------ corrections and several questions

    @staticmethod
    def _correction(said: str) -> str | None:
        """The corrected part of "不对，我说的是省内" / "不是省外是省内" / "我问的是上学", or None."""
        text = said.strip()
        if not CORRECTION_START.search(text):
            return None
        text = re.sub(rf"^{INTERJECTION}", "", text)
        text = re.sub(r"[，,\s]*(?:俺|我)?(?:说错了|记错了|搞错了|弄错了|打错了)[了吧啊。！!\s]*$", "", text) or text
        m = NOT_X_BUT_Y.search(text)
        if m and m.group("new").strip():
            return m.group("new").strip(" ，,。")
        m = CORRECTION.search(text)
        if m and m.group("new").strip():
            return m.group("new").strip(" ，,。")
        rest = re.sub(r"^(?:不对|不是|错了|说错了|搞错了|弄错了|记错了|我说错了|打错了|还是)[，,。\s]*", "", text)
        return re.sub(r"[吧啊呀]$", "", rest) or None

    def _corrected(self, corrected: str, understood: Understood, state: State) -> Turn:
        if HUMAN.search(corrected):
            return self._hand_off(state)
        parsed = self.parse(corrected) or understood
        if (
            parsed.intent in self.topic_intents
            and parsed.confidence >= TOPIC_CONFIDENCE
            and not (
                parsed.intent in SUBSIDY_INTENTS
                and state.topic in ("transport_subsidy", "employment_award")
                and parsed.entities
            )
        ):
            return self._topic(parsed.intent, parsed.entities, state)
        if parsed.entities and state.topic:
            return self._topic(self.kb.entries[state.topic].intent, parsed.entities, state)
        if parsed.entities:
            return self._topic("follow_up", parsed.entities, state)
        if state.topic and PERSON_WORDS.search(corrected) and parsed.intent not in self.topic_intents:
            return self._about_someone_else(corrected, parsed, state)  # "不是我是我儿子": the same topic, for him
        if parsed.intent not in MISSED and parsed is not understood:
            return self._answer(corrected, parsed, replace(state, topic=None))
        text = "不好意思，我理解错了。您想问的是哪一项？点下面的按钮，或者再说一遍。"
        return Turn([Reply(text, self._buttons(["交通补贴", "就业奖补", "上学划片", "医保", "两地权益"]))], state)

    def _variant_entities(self, understood: Understood) -> Tuple[Tuple[str, str], ...]:
        """The entities that pick a variant of the intent's answer ("县里有培训班没": 县里 changes nothing)."""
        entry = self.kb.for_intent(understood.intent)
        kinds = entry.variants if entry is not None else {}
        return tuple(sorted((k, v) for k, v in understood.entities.items() if k in kinds))

    def _several(self, said: str, understood: Understood, state: State) -> Turn | None:
        """A message with two topics, places or people: an answer to each, in order, in one reply."""
        clauses = [c for c in CLAUSE_BREAK.split(said) if len(c) >= 2]
        if len(clauses) < 2 or said.startswith("/") or understood.intent == "out_of_scope":
            return None
        parsed = [(c, self.parse(c)) for c in clauses]
        if any(p is None for _, p in parsed):
            return None
        situations: List[Tuple[str, str]] = []  # (who, region)
        topics: List[Understood] = []
        for clause, p in parsed:
            region = p.entities.get("work_region")
            if region:
                who = self._who(clause)
                if CORRECTION_MARK.search(clause) and situations:
                    who = situations.pop()[0]  # "在西安 哦不对是在太原": the place is corrected, the person stays
                situations.append((who, region))
            if p.intent in self.topic_intents and p.confidence >= 0.5:
                topics.append(p)
        people = list(dict.fromkeys(situations))
        asked = list(dict.fromkeys((t.intent, self._variant_entities(t)) for t in topics))
        if len(asked) == 1 and not people and understood.intent in (*MISSED, "follow_up", *SOCIAL):
            intent, entities = asked[0]
            return self._topic(intent, dict(entities), state)
        if len(asked) < 2 and len(people) < 2:
            if len(people) == 1 and CORRECTION_MARK.search(said):
                who, region = people[0]
                return self._topic(self._subsidy_entry_for(region), {"work_region": region}, state)
            return None
        if HOUSEHOLD_CUE.search(said):
            return None  # a household question with details: the household answer covers every member
        texts: List[str] = []
        sources: List[str] = []
        new_state = replace(state, misses=0)
        answered_subsidy = False
        for intent, entities in asked or [("ask_subsidy_general", ())]:
            if intent in SUBSIDY_INTENTS and people:
                if answered_subsidy:
                    continue
                answered_subsidy = True
                for who, region in people:
                    entry_id = self._subsidy_entry_for(region)
                    body, source = self._split_source(
                        self.kb.reply(entry_id, {"work_region": region}, None, self.placeholders, detailed=False).text
                    )
                    texts.append(f"【{who}{REGION_WORDS.get(region, region)}干活】\n{body}")
                    sources.append(source)
                    new_state = replace(new_state, topic=self.kb.for_intent(entry_id).id, work_region=region)
                continue
            clause_entities = dict(entities)
            reply = self.kb.reply(intent, clause_entities, state.topic, self.placeholders, detailed=False)
            body, source = self._split_source(reply.text)
            texts.append(f"【{self.kb.entries[reply.entry_id].title}】\n{body}")
            sources.append(source)
            new_state = replace(new_state, topic=reply.entry_id, **self._context(clause_entities))
        if not texts:
            return None
        sources = [s for s in dict.fromkeys(sources) if s]
        return Turn([Reply("\n\n".join(texts) + ("\n" + "\n".join(sources) if sources else ""))], new_state)

    # ------------------------------------------------------------------ small helpers

    @staticmethod
    def _who(clause: str) -> str:
        person = PERSON_WORDS.search(clause)
        if person:
            return ("您" if SELF_WORDS.search(clause) and person.start() > 0 else "") + person.group(0)
        return "您"

    def _subsidy_entry_for(self, region: str) -> str:
        return "ask_employment_award" if region == "县内" else "ask_transport_subsidy"

    @staticmethod
    def _split_source(text: str) -> Tuple[str, str]:
        body, sep, source = text.rpartition("\n（依据：")
        return (body, "（依据：" + source) if sep else (text, "")

    @staticmethod
    def _context(entities: Mapping[str, str]) -> Dict[str, str]:
        return {kind: value for kind, value in entities.items() if kind in CONTEXT_ENTITIES}

    def _reply(self, intent: str):
        return self.kb.reply(intent, {}, None, self.placeholders)

    @staticmethod
    def _as_reply(reply, said: str = "") -> Reply:
        # a button that repeats the question just answered is noise
        buttons = tuple((b.title, b.payload) for b in reply.buttons if b.payload != said and b.title != said)
        return Reply(reply.text, buttons)

    def _buttons(self, titles: Sequence[str]) -> Tuple[Tuple[str, str], ...]:
        out = []
        for title in titles:
            if title == "算了":
                out.append(("算了，不查了", "/forget_verification"))
                continue
            if title == "转人工":
                out.append(("转人工", "/request_human"))
                continue
            button = self.kb._button(title)
            out.append((button.title, button.payload))
        return tuple(out)

    def _topic_guess(self, understood: Understood) -> str:
        """The title of the policy topic the model thought closest, for the staff's weekly chart."""
        for name in understood.ranking:
            entry = self.kb.for_intent(name)
            if entry is not None and entry.is_topic:
                return entry.title
        return ""
