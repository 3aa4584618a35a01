"""The held-out split is honest: no sentence under tests/nlu/ is, or nearly is, a sentence the model trains on.

Both sides are compared after the same normalization (traditional → simplified, full-width → half-width by
bot.text_normalization, then case, punctuation and whitespace dropped): 謝謝你 is 谢谢你, "你好，在吗" is 你好在吗.
"Nearly" is a character-3-gram Jaccard similarity of 0.8 or more: the same sentence with a particle added or a word
swapped would score the model on what it memorised, not on what it learned."""

import unicodedata
from functools import cache
from pathlib import Path

import pytest

from bot.faq import nlu_examples
from bot.text_normalization import TextNormalizer

ROOT = Path(__file__).resolve().parent.parent
TRAINING_FILES = sorted((ROOT / "data/nlu").glob("*.yml"))
HELDOUT_FILES = sorted(p for p in (ROOT / "tests/nlu").iterdir() if p.suffix in (".yml", ".yaml"))
THRESHOLD = 0.8

_normalizer = TextNormalizer()


@cache
def normalize(text: str) -> str:
    text = _normalizer(text).casefold()
    return "".join(ch for ch in text if not ch.isspace() and not unicodedata.category(ch).startswith("P"))


def trigrams(text: str) -> frozenset:
    return frozenset(text[i : i + 3] for i in range(len(text) - 2))


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the character 3-grams of two normalized sentences; equality for very short ones."""
    if len(a) < 3 or len(b) < 3:
        return 1.0 if a == b else 0.0
    x, y = trigrams(a), trigrams(b)
    return len(x & y) / len(x | y)


def _sentences(paths):
    return [(intent, text) for intent, lines in nlu_examples(paths).items() for text in lines]


TRAINING = [(intent, text, normalize(text)) for intent, text in _sentences(TRAINING_FILES)]
TRAINED = {norm for _, _, norm in TRAINING}


def test_the_split_has_both_sides():
    assert TRAINING and HELDOUT_FILES
    assert all(_sentences([path]) for path in HELDOUT_FILES)


def test_normalization():
    assert normalize("謝謝你！") == normalize("谢谢你") == "谢谢你"
    assert normalize("你好， 在吗？") == "你好在吗"
    assert normalize("ＨＥＬＬＯ") == "hello"


def test_similarity():
    assert similarity("交通补贴怎么领", "交通补贴怎么领") == 1.0
    assert similarity("交通补贴怎么领", "交通补贴咋领") < THRESHOLD
    assert similarity("我在县城上班有奖补吗", "我在县城上班有奖补吗呢") >= THRESHOLD
    assert similarity("嗨", "嗨") == 1.0 and similarity("嗨", "嗨你好") == 0.0


@pytest.mark.parametrize("path", HELDOUT_FILES, ids=lambda p: p.name)
def test_no_heldout_sentence_is_a_training_sentence(path):
    leaked = [(intent, text) for intent, text in _sentences([path]) if normalize(text) in TRAINED]
    assert not leaked, f"{path.name}: held-out sentences that are also in data/nlu: {leaked}"


@pytest.mark.parametrize("path", HELDOUT_FILES, ids=lambda p: p.name)
def test_no_heldout_sentence_nearly_repeats_a_training_sentence(path):
    near = []
    for intent, text in _sentences([path]):
        norm = normalize(text)
        for trained_intent, trained, trained_norm in TRAINING:
            score = similarity(norm, trained_norm)
            if score >= THRESHOLD:
                near.append(f"{intent}: {text!r} ~ {trained_intent}: {trained!r} ({score:.2f})")
    assert not near, f"{path.name}: held-out sentences too close to training sentences:\n" + "\n".join(near)
