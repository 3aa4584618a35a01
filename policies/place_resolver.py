"""PlaceResolver: finds where a resident works ("在太原打工", "去内蒙古", "在县城") and turns it into a work region.

The regions are the ones the subsidies are paid by: 县内 / 县外省内 / 省外, measured from the county this deployment
serves (settings ANJU_COUNTY / ANJU_CITY / ANJU_PROVINCE). A spaCy blank `zh` pipeline segments with its own jieba
instance (so the gazetteer's words never leak into the tokenizer's global dictionary) and an EntityRuler matches the
gazetteer in knowledge/places.yml. Training stores the patterns in the model, so a model resolves places exactly as it
did when it was trained.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Text, Tuple

import yaml
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot import settings as settings_module

logger = logging.getLogger(__name__)

COUNTY, PROVINCE_NOT_COUNTY, OUT_OF_PROVINCE = "县内", "县外省内", "省外"
REGIONS = (COUNTY, PROVINCE_NOT_COUNTY, OUT_OF_PROVINCE)
# words that say the place is where someone works; the place nearest one of them is the work place
WORK_CUES = ("打工", "务工", "上班", "干活", "工作", "就业", "挣钱", "做工", "打零工", "出去", "去", "跑", "在")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SUFFIXES = ("特别行政区", "维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "省", "市", "县", "区", "镇", "乡")


@dataclass(frozen=True)
class Served:
    province: str
    city: str
    county: str


@dataclass(frozen=True)
class PlaceMatch:
    text: str
    start: int
    end: int
    # "省|市|县|乡镇|村" as far as known, or "region:县内" for a word like 县城 that names a region directly
    path: str


def _short_form(name: str) -> str | None:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return None


def build_patterns(gazetteer: Dict[str, Any]) -> List[Dict[str, str]]:
    """EntityRuler patterns from the gazetteer: every full name and safe short form, with its path as the id."""
    ambiguous = set(gazetteer.get("ambiguous") or [])
    patterns: Dict[str, str] = {}

    def add(names: Iterable[str], path: str) -> None:
        for name in names:
            if name and name not in ambiguous and name not in patterns:
                patterns[name] = path

    def add_place(name: str, aliases: Iterable[str], path: str) -> None:
        short = _short_form(name)
        add([name, *(aliases or []), *([short] if short else [])], path)

    for region, words in (gazetteer.get("region_words") or {}).items():
        if region not in REGIONS:
            raise ValueError(f"places.yml: region_words has unknown region {region!r}; use one of {REGIONS}")
        add(words, f"region:{region}")
    # counties before cities before provinces, so that a name shared by levels means the most specific place
    province_items = (gazetteer.get("provinces") or {}).items()
    county_of_town: Dict[str, str] = {}
    for province, p in province_items:
        for city, c in ((p or {}).get("cities") or {}).items():
            for county in (c or {}).get("counties") or []:
                county_of_town[county] = f"{province}|{city}|{county}"
                add_place(county, [], f"{province}|{city}|{county}")
    for county, towns in (gazetteer.get("towns") or {}).items():
        county_path = county_of_town.get(county)
        if county_path is None:
            raise ValueError(f"places.yml: towns are listed for {county}, which is in no city under provinces")
        for town, villages in (towns or {}).items():
            add_place(town, [], f"{county_path}|{town}")
            for village in villages or []:
                add_place(village, [], f"{county_path}|{town}|{village}")
    for province, p in province_items:
        for city, c in ((p or {}).get("cities") or {}).items():
            add_place(city, (c or {}).get("aliases"), f"{province}|{city}")
    for province, p in province_items:
        add_place(province, (p or {}).get("aliases"), province)
    return [{"label": "PLACE", "pattern": name, "id": path} for name, path in patterns.items()]


def region_of(path: str, served: Served) -> str | None:
    """县内 / 县外省内 / 省外 for a matched place, seen from the served county."""
    if path.startswith("region:"):
        return path.split(":", 1)[1]
    parts = path.split("|")
    province = parts[0]
    if province != served.province:
        return OUT_OF_PROVINCE
    if len(parts) >= 3 and parts[2] == served.county:
        return COUNTY
    # anywhere else in the province, the province itself or its cities included, is outside the county
    return PROVINCE_NOT_COUNTY


def pick_work_place(text: str, matches: List[PlaceMatch]) -> PlaceMatch | None:
    """The place the resident works in: the one nearest a work word ("老家宋家沟的，现在在太原打工" → 太原)."""
    if not matches:
        return None

    def distance(m: PlaceMatch) -> int:
        best = 1_000
        for cue in WORK_CUES:
            before = text.rfind(cue, 0, m.start)
            if before != -1:
                best = min(best, m.start - (before + len(cue)))
            after = text.find(cue, m.end)
            if after != -1:
                best = min(best, after - m.end)
        return best

    # ties go to the later mention: people say where they come from first
    return min(reversed(matches), key=distance)


class PlaceMatcher:
    """The spaCy side: a blank `zh` pipeline with jieba segmentation and an EntityRuler over the patterns."""

    def __init__(self, patterns: List[Dict[str, str]]):
        import jieba
        import spacy

        self.nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
        segmenter = jieba.Tokenizer()
        for p in patterns:
            segmenter.add_word(p["pattern"], freq=100_000)
        # spaCy's ChineseTokenizer calls `jieba_seg.cut`; a private jieba.Tokenizer keeps the global dictionary clean
        self.nlp.tokenizer.jieba_seg = segmenter
        ruler = self.nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "ORTH"})
        ruler.add_patterns(patterns)

    def find(self, text: str) -> List[PlaceMatch]:
        # spaCy cannot hash a lone surrogate (UnicodeEncodeError); one replacement character each keeps the offsets
        doc = self.nlp(_LONE_SURROGATE.sub("\ufffd", text))
        return [PlaceMatch(e.text, e.start_char, e.end_char, e.ent_id_) for e in doc.ents]


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class PlaceResolver(GraphComponent, EntityExtractorMixin):
    """Adds a `work_region` entity (县内 / 县外省内 / 省外) over the place the resident works in."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # the gazetteer, read at training time and stored in the model
            "gazetteer_path": "knowledge/places.yml",
            # the served place; empty means: from the settings (ANJU_PROVINCE / ANJU_CITY / ANJU_COUNTY)
            "province": None,
            "city": None,
            "county": None,
        }

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        patterns: List[Dict[str, str]] | None = None,
        served: Served | None = None,
    ) -> None:
        self._config = config
        self._model_storage = model_storage
        self._resource = resource
        self.served = served or self._served(config)
        self.patterns = patterns or []
        self._matcher = PlaceMatcher(self.patterns) if self.patterns else None

    @staticmethod
    def _served(config: Dict[Text, Any]) -> Served:
        settings = settings_module.load()
        return Served(
            config.get("province") or settings.province,
            config.get("city") or settings.city,
            config.get("county") or settings.county,
        )

    @staticmethod
    def _gazetteer_path(config: Dict[Text, Any]) -> Path:
        path = Path(config.get("gazetteer_path") or "knowledge/places.yml")
        return path if path.is_absolute() else settings_module.ROOT / path

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> str | None:
        """What training reads besides the training data: the gazetteer file, the served place from the settings and
        the helper functions of this module. Rasa retrains this component exactly when one of them changes."""
        path = cls._gazetteer_path(config)
        gazetteer = path.read_bytes() if path.exists() else b""
        return json.dumps(
            {
                "gazetteer": hashlib.sha256(gazetteer).hexdigest(),
                "served": cls._served(config).__dict__,
                "module": hashlib.sha256(inspect.getsource(sys.modules[__name__]).encode("utf-8")).hexdigest(),
            },
            sort_keys=True,
        )

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> PlaceResolver:
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> PlaceResolver:
        try:
            with model_storage.read_from(resource) as directory:
                stored = json.loads((directory / "places.json").read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            logger.warning("PlaceResolver: no gazetteer stored in the model; places will not be resolved")
            return cls(config, model_storage, resource)
        return cls(config, model_storage, resource, stored["patterns"], Served(**stored["served"]))

    @staticmethod
    def required_packages() -> List[Text]:
        return ["spacy", "jieba"]

    def train(self, training_data: TrainingData) -> Resource:
        path = self._gazetteer_path(self._config)
        gazetteer = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        self.patterns = build_patterns(gazetteer)
        self._matcher = PlaceMatcher(self.patterns)
        with self._model_storage.write_to(self._resource) as directory:
            (directory / "places.json").write_text(
                json.dumps({"patterns": self.patterns, "served": self.served.__dict__}, ensure_ascii=False),
                encoding="utf-8",
            )
        return self._resource

    def resolve(self, text: str) -> Tuple[List[PlaceMatch], PlaceMatch | None, str | None]:
        """All places in the text, the one worked in, and its region."""
        if self._matcher is None or not text:
            return [], None, None
        matches = self._matcher.find(text)
        work = pick_work_place(text, matches)
        return matches, work, region_of(work.path, self.served) if work else None

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            _, work, region = self.resolve(message.get(TEXT) or "")
            if not (work and region):
                continue
            entity = {
                "entity": "work_region",
                "value": region,
                "start": work.start,
                "end": work.end,
                "confidence": 1.0,
                "extractor": self.__class__.__name__,
            }
            message.set(ENTITIES, message.get(ENTITIES, []) + [entity], add_to_output=True)
        return messages
