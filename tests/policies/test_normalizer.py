"""ChineseNormalizer: what it does to residents' text, and that a trained model keeps its options."""

import uuid

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from policies.normalizer import ChineseNormalizer, TextNormalizer, chinese_to_int


@pytest.mark.parametrize(
    "text, expected",
    [
        ("俺們家娃娃上學咋辦？", "俺们家娃娃上学咋办?"),  # traditional → simplified, full-width ? → ?
        ("交通補貼怎麼領", "交通补贴怎么领"),
        ("ＡＢＣ１２３", "ABC123"),  # full-width letters and digits
        ("我在县城干了三个月", "我在县城干了3个月"),
        ("省外给八百元吗", "省外给800元吗"),
        ("在太原干了十二个月", "在太原干了12个月"),
        ("孩子今年二十三岁", "孩子今年23岁"),
        ("一百零五户", "105户"),
        ("两个娃都上学", "2个娃都上学"),
        ("一次性交通补贴", "一次性交通补贴"),  # 一次性 is a word, not a count
        ("我们一家人", "我们一家人"),
        ("搬来两三个月了", "搬来两三个月了"),  # a range stays as said
        ("一约四会是啥", "一约四会是啥"),  # not followed by a measure word
        ("能领补贴吗😀👍🏻", "能领补贴吗"),
        ("🇨🇳 你好 ❤️", "你好"),
        ("我 想 问 一下 交通 补贴", "我想问一下交通补贴"),  # voice input spacing
        ("  医保   在哪交  ", "医保在哪交"),
        ("rasa  is   fine", "rasa is fine"),  # spaces between Latin words are kept, runs folded
        ("13810是啥", "13810是啥"),
    ],
)
def test_normalizes_what_residents_type(text, expected):
    assert TextNormalizer()(text) == expected


@pytest.mark.parametrize(
    "numeral, value",
    [("三", 3), ("十", 10), ("十二", 12), ("二十", 20), ("一百零五", 105), ("三万五千", 35000), ("两三", None)],
)
def test_chinese_numerals(numeral, value):
    assert chinese_to_int(numeral) == value


def test_spans_follow_the_text():
    norm = TextNormalizer().normalize("😀在 太原 打工三个月")
    start, end = norm.span(3, 5)  # 太原 in the original
    assert norm.text[start:end] == "太原"
    start, end = norm.span(8, 11)  # 三个月 → 3个月
    assert norm.text[start:end] == "3个月"


def test_options_can_be_switched_off():
    text = "三個月😀"
    assert TextNormalizer(traditional_to_simplified=False, numerals=False, strip_emoji=False)(text) == text


@pytest.fixture
def storage(tmp_path):
    return LocalModelStorage.create(tmp_path)


def _context():
    return ExecutionContext(GraphSchema({}), uuid.uuid4().hex)


def test_create_persist_load_round_trip(storage):
    resource = Resource("normalizer")
    config = {**ChineseNormalizer.get_default_config(), "numerals": False}
    trained = ChineseNormalizer.create(config, storage, resource, _context())
    trained.train(TrainingData())

    # the model keeps the options it was trained with, even if the configuration changes later
    loaded = ChineseNormalizer.load(ChineseNormalizer.get_default_config(), storage, resource, _context())
    [message] = loaded.process([Message(data={"text": "交通補貼三个月"})])
    assert message.get("text") == "交通补贴三个月"


def test_training_data_is_normalized_and_entities_move_with_it(storage):
    component = ChineseNormalizer.create(ChineseNormalizer.get_default_config(), storage, Resource("n"), _context())
    text = "😀 那 幼兒園 呢"
    example = Message(
        data={
            "text": text,
            "intent": "follow_up",
            "entities": [{"start": 4, "end": 7, "value": "幼兒園", "entity": "school_level"}],
        }
    )
    [out] = component.process_training_data(TrainingData([example])).training_examples
    assert out.get("text") == "那幼儿园呢"
    entity = out.get("entities")[0]
    assert out.get("text")[entity["start"] : entity["end"]] == "幼儿园"
