"""ChineseNormalizer: the first step of the NLU pipeline, so that every later component sees one spelling of a question.

Traditional → simplified (OpenCC), full-width → half-width (NFKC), Chinese numerals → digits where they count
something (三个月 → 3个月), emoji and stray spacing removed. Entity offsets in training data follow the text.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Dict, List, Text, Tuple

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, ENTITY_ATTRIBUTE_END, ENTITY_ATTRIBUTE_START, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.shared.utils.io import read_json_file

logger = logging.getLogger(__name__)

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMERAL = "零〇一二两三四五六七八九十百千万"
# measure words after which a numeral is a quantity. 次性 (一次性) and 家人 (一家人) are words, not counts.
_MEASURES = r"个月|个|月|年|元|块|岁|人|户|口|天|周|星期|次(?!性)|名|项|座|间|家(?!人)|倍|孩|娃|趟|亩"
_QUANTITY = re.compile(rf"[{_NUMERAL}]+(?=(?:{_MEASURES}))")
# pictographs, dingbats, flags, variation selectors, zero-width joiners and keycaps
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\U00002b00-\U00002bff"
    "\U0000fe00-\U0000fe0f\U0000200d\U000020e3\U0000231a-\U0000231b\U000023e9-\U000023fa]"
)
_CJK = r"\u3000-\u303f\u3400-\u9fff\uff00-\uffef"
# a space with Chinese (or Chinese punctuation) on either side carries no meaning: voice input puts them anywhere
_SPACE_NEAR_CJK = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")


def chinese_to_int(numeral: str) -> int | None:
    """三 → 3, 十二 → 12, 二十 → 20, 一百零五 → 105, 三万五千 → 35000.

    None when it is not a single number: 两三 (个月) and 五六 (个人) are ranges and stay as they are."""
    if not numeral or any(ch not in _NUMERAL for ch in numeral):
        return None
    if len(numeral) > 1 and all(ch in _DIGITS for ch in numeral):
        return None
    total, section, digit = 0, 0, None
    for ch in numeral:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
        elif ch in _UNITS:
            section += (1 if digit is None else digit) * _UNITS[ch]
            digit = None
        elif ch == "万":
            total += (section + (digit or 0)) * 10000
            section, digit = 0, None
    return total + section + (digit or 0)


@dataclass
class Normalized:
    """Normalized text and, for each of its characters, the index of the character it came from."""

    text: str
    origin: List[int]

    def span(self, start: int, end: int) -> Tuple[int, int]:
        """Where the original span [start, end) lies in the normalized text."""
        new_start = next((i for i, o in enumerate(self.origin) if o >= start), len(self.text))
        new_end = max((i + 1 for i, o in enumerate(self.origin) if o < end), default=new_start)
        return new_start, max(new_start, new_end)


def _substitute(norm: Normalized, pattern: re.Pattern, replace) -> Normalized:
    """Apply re.sub while carrying each character's origin; a replacement inherits the origin of its match."""
    text, origin, pos = [], [], 0
    for m in pattern.finditer(norm.text):
        text.append(norm.text[pos : m.start()])
        origin.extend(norm.origin[pos : m.start()])
        new = replace(m)
        text.append(new)
        origin.extend([norm.origin[m.start()] if m.start() < len(norm.origin) else len(norm.origin)] * len(new))
        pos = m.end()
    text.append(norm.text[pos:])
    origin.extend(norm.origin[pos:])
    return Normalized("".join(text), origin)


class TextNormalizer:
    """The normalization itself, independent of Rasa so it can be reused and tested on its own."""

    def __init__(self, traditional_to_simplified: bool = True, numerals: bool = True, strip_emoji: bool = True):
        self.traditional_to_simplified = traditional_to_simplified
        self.numerals = numerals
        self.strip_emoji = strip_emoji
        self._opencc = None
        if traditional_to_simplified:
            import opencc

            self._opencc = opencc.OpenCC("t2s")

    def normalize(self, text: str) -> Normalized:
        chars, origin = [], []
        for i, ch in enumerate(text):
            out = unicodedata.normalize("NFKC", ch)
            chars.append(out)
            origin.extend([i] * len(out))
        norm = Normalized("".join(chars), origin)
        if self._opencc is not None:
            converted = self._opencc.convert(norm.text)
            if len(converted) != len(norm.text):
                # a phrase conversion changed the length: convert character by character to keep the offsets
                converted = "".join(self._opencc.convert(ch)[:1] or ch for ch in norm.text)
            norm = Normalized(converted, norm.origin)
        if self.strip_emoji:
            norm = _substitute(norm, _EMOJI, lambda m: "")
        norm = _substitute(norm, _SPACE_NEAR_CJK, lambda m: "")
        norm = _substitute(norm, re.compile(r"\s{2,}"), lambda m: " ")
        norm = _substitute(norm, re.compile(r"^\s+|\s+$"), lambda m: "")
        if self.numerals:
            norm = _substitute(norm, _QUANTITY, lambda m: _numeral_to_digits(m.group(0)))
        return norm

    def __call__(self, text: str) -> str:
        return self.normalize(text).text


def _numeral_to_digits(numeral: str) -> str:
    value = chinese_to_int(numeral)
    return numeral if value is None else str(value)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class ChineseNormalizer(GraphComponent):
    """Rewrites the message text in place before tokenization. Registered as a featurizer so that Rasa also runs it
    over the training data; it adds no features. The options it was trained with are stored in the model, so a model
    normalizes at run time exactly as it did in training."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"traditional_to_simplified": True, "numerals": True, "strip_emoji": True}

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource) -> None:
        self._config = {key: bool(config.get(key, default)) for key, default in self.get_default_config().items()}
        self._model_storage = model_storage
        self._resource = resource
        self.normalizer = TextNormalizer(**self._config)

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ChineseNormalizer:
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> ChineseNormalizer:
        try:
            with model_storage.read_from(resource) as directory:
                stored = read_json_file(directory / "normalizer.json")
            config = {**config, **stored}
        except ValueError:
            logger.warning("ChineseNormalizer: no stored options in the model; using the configured ones")
        return cls(config, model_storage, resource)

    @staticmethod
    def required_packages() -> List[Text]:
        return ["opencc"]

    def train(self, training_data: TrainingData) -> Resource:
        import json

        with self._model_storage.write_to(self._resource) as directory:
            (directory / "normalizer.json").write_text(json.dumps(self._config), encoding="utf-8")
        return self._resource

    def _normalize_message(self, message: Message) -> None:
        text = message.get(TEXT)
        if not isinstance(text, str) or not text:
            return
        norm = self.normalizer.normalize(text)
        if norm.text == text:
            return
        for entity in message.get(ENTITIES) or []:
            entity[ENTITY_ATTRIBUTE_START], entity[ENTITY_ATTRIBUTE_END] = norm.span(
                entity[ENTITY_ATTRIBUTE_START], entity[ENTITY_ATTRIBUTE_END]
            )
        message.set(TEXT, norm.text)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for example in training_data.training_examples:
            self._normalize_message(example)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._normalize_message(message)
        return messages
