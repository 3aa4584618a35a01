"""FAQ search for staff: BM25 over the knowledge entries, each entry's text joined with the training examples of its
intent, so questions phrased the residents' way find the official answer. Tokens are jieba words (search mode) and
character bigrams, which also catch the common typos and homophones (交通不贴 still shares 交通 with 交通补贴)."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List

import jieba
import yaml

from bot.knowledge import Knowledge
from bot.text_normalization import TextNormalizer

_ANNOTATION = re.compile(r"\[([^\]]+)\]\([^)]+\)|\[([^\]]+)\]\{[^}]+\}")
_WORD = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]")
_STOP = set("的了吗呢吧啊呀么是我你他她们在有和就都也还要会能想请问一下个这那哪啥咋怎么什么")


def tokens(text: str, normalizer: TextNormalizer) -> List[str]:
    text = normalizer(text)
    words = [w for w in jieba.lcut_for_search(text) if _WORD.search(w) and w not in _STOP]
    chars = [c for c in text if _WORD.match(c)]
    bigrams = ["".join(pair) for pair in zip(chars, chars[1:], strict=False)]
    return words + bigrams


@dataclass(frozen=True)
class Hit:
    entry_id: str
    score: float


class FaqIndex:
    def __init__(self, knowledge: Knowledge, nlu_dir: Path, k1: float = 1.5, b: float = 0.75):
        self.normalizer = TextNormalizer()
        self.k1, self.b = k1, b
        examples = nlu_examples(sorted(Path(nlu_dir).glob("*.yml")))
        self.ids: List[str] = []
        self.docs: List[Counter] = []
        for entry in knowledge.entries.values():
            if not entry.is_topic:
                continue  # greetings, menus and fallbacks are not answers to look up
            variants = " ".join(v for values in entry.variants.values() for v in values.values())
            text = " ".join([entry.title, entry.title, entry.answer, variants, *examples.get(entry.intent, [])])
            self.ids.append(entry.id)
            self.docs.append(Counter(tokens(text, self.normalizer)))
        self.lengths = [sum(d.values()) for d in self.docs]
        self.average = sum(self.lengths) / max(1, len(self.lengths))
        df = Counter(term for d in self.docs for term in d)
        n = len(self.docs)
        self.idf = {term: math.log(1 + (n - f + 0.5) / (f + 0.5)) for term, f in df.items()}

    def search(self, query: str, limit: int = 5) -> List[Hit]:
        terms = tokens(query, self.normalizer)
        scores = []
        for i, doc in enumerate(self.docs):
            score = 0.0
            for term in terms:
                f = doc.get(term, 0)
                if f:
                    norm = 1 - self.b + self.b * self.lengths[i] / self.average
                    score += self.idf[term] * f * (self.k1 + 1) / (f + self.k1 * norm)
            if score > 0:
                scores.append(Hit(self.ids[i], round(score, 3)))
        ranked = sorted(scores, key=lambda h: -h.score)
        # hits far behind the best one are noise (a shared 能 or 吗), not other answers worth reading
        return [h for h in ranked if h.score >= ranked[0].score * 0.35][:limit] if ranked else []


def nlu_examples(paths: Iterable[Path]) -> Dict[str, List[str]]:
    """{intent: [example, …]} from Rasa NLU YAML files, with entity annotations reduced to their text."""
    out: Dict[str, List[str]] = {}
    for path in paths:
        for block in (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}).get("nlu", []):
            if "intent" in block:
                lines = [ln.strip()[2:] for ln in block["examples"].splitlines() if ln.strip().startswith("- ")]
                out.setdefault(block["intent"], []).extend(
                    _ANNOTATION.sub(lambda m: m.group(1) or m.group(2), ln) for ln in lines
                )
    return out
