"""ChineseNormalizer: the first step of the NLU pipeline, so that every later component sees one spelling of a question.

The normalization itself lives in bot/text_normalization.py (no Rasa imports, also used by the staff search).
Entity offsets in training data follow the text.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, ENTITY_ATTRIBUTE_END, ENTITY_ATTRIBUTE_START, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.shared.utils.io import read_json_file

from bot import text_normalization
from bot.text_normalization import Normalized, TextNormalizer, chinese_to_int

__all__ = ["ChineseNormalizer", "Normalized", "TextNormalizer", "chinese_to_int"]

logger = logging.getLogger(__name__)


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

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> str | None:
        """The normalization itself lives in bot.text_normalization: Rasa retrains when that code changes."""
        return hashlib.sha256(inspect.getsource(text_normalization).encode("utf-8")).hexdigest()

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
