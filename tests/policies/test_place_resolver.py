"""PlaceResolver: where a resident works, as the region the subsidies are paid by; and its model round trip."""

import uuid

import pytest
import yaml
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.settings import ROOT
from policies.place_resolver import PlaceResolver, build_patterns


def _context():
    return ExecutionContext(GraphSchema({}), uuid.uuid4().hex)


@pytest.fixture(scope="module")
def resolver(tmp_path_factory):
    storage = LocalModelStorage.create(tmp_path_factory.mktemp("model"))
    component = PlaceResolver.create(PlaceResolver.get_default_config(), storage, Resource("places"), _context())
    component.train(TrainingData())
    return component


def region(resolver, text):
    return resolver.resolve(text)[2]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("在太原打工", "县外省内"),
        ("去内蒙古", "省外"),
        ("在县城", "县内"),
        ("俺在岢岚干活3个月", "县内"),
        ("在三井镇的厂里上班", "县内"),  # a town of the served county
        ("在五寨县打工", "县外省内"),  # another county of the same city
        ("在忻州上班", "县外省内"),  # the city, not the county
        ("在长子县打工", "县外省内"),
        ("我儿子在鄂尔多斯煤矿上班", "省外"),
        ("闺女去深圳进厂了", "省外"),
        ("在北京当保安", "省外"),
        ("那在省内呢", "县外省内"),
        ("外省呢", "省外"),
        ("在家门口的帮扶车间干活", "县内"),
        ("我老家宋家沟的，现在在北京打工", "省外"),  # the place worked in, not the home village
        ("在太原打工，老家是宋家沟的", "县外省内"),
        ("我家长子想问补贴", None),  # 长子 here is the eldest son, not 长子县
        ("交通补贴多少钱", None),
    ],
)
def test_work_region(resolver, text, expected):
    assert region(resolver, text) == expected


def test_the_served_county_is_a_setting(tmp_path, monkeypatch):
    """Deployed in 五寨县, 岢岚 is another county of the same province."""
    monkeypatch.setenv("ANJU_COUNTY", "五寨县")
    storage = LocalModelStorage.create(tmp_path)
    component = PlaceResolver.create(PlaceResolver.get_default_config(), storage, Resource("p"), _context())
    component.train(TrainingData())
    assert region(component, "在岢岚打工") == "县外省内"
    assert region(component, "在五寨干活") == "县内"


def test_create_persist_load_round_trip(tmp_path, monkeypatch):
    storage = LocalModelStorage.create(tmp_path)
    resource = Resource("places")
    PlaceResolver.create(PlaceResolver.get_default_config(), storage, resource, _context()).train(TrainingData())

    # the loaded model resolves from what training stored, not from today's settings
    monkeypatch.setenv("ANJU_COUNTY", "五寨县")
    loaded = PlaceResolver.load(PlaceResolver.get_default_config(), storage, resource, _context())
    [message] = loaded.process([Message(data={"text": "俺在岢岚打工"})])
    [entity] = message.get("entities")
    assert entity["entity"] == "work_region"
    assert entity["value"] == "县内"
    assert message.get("text")[entity["start"] : entity["end"]] == "岢岚"


def test_no_place_no_entity(resolver):
    [message] = resolver.process([Message(data={"text": "医保在哪交"})])
    assert not message.get("entities")


def test_gazetteer_covers_every_province_and_shanxi_city():
    gazetteer = yaml.safe_load((ROOT / "knowledge/places.yml").read_text(encoding="utf-8"))
    assert len(gazetteer["provinces"]) == 34
    assert len(gazetteer["provinces"]["山西省"]["cities"]) == 11
    names = {p["pattern"] for p in build_patterns(gazetteer)}
    assert {"太原", "内蒙古", "岢岚", "岢岚县", "宋家沟", "县城"} <= names
    assert not names & set(gazetteer["ambiguous"])


def test_unknown_region_word_is_refused():
    with pytest.raises(ValueError, match="unknown region"):
        build_patterns({"region_words": {"县外": ["县外"]}})


def test_fingerprint_follows_the_gazetteer_and_the_served_place(tmp_path, monkeypatch):
    """Rasa retrains the resolver exactly when what it reads at training time changes (fingerprint_addon)."""
    config = PlaceResolver.get_default_config()
    base = PlaceResolver.fingerprint_addon(config)
    assert PlaceResolver.fingerprint_addon(config) == base
    monkeypatch.setenv("ANJU_COUNTY", "兴县")
    assert PlaceResolver.fingerprint_addon(config) != base
    monkeypatch.delenv("ANJU_COUNTY")
    gazetteer = tmp_path / "places.yml"
    gazetteer.write_text((ROOT / "knowledge/places.yml").read_text(encoding="utf-8"), encoding="utf-8")
    copied = {**config, "gazetteer_path": str(gazetteer)}
    assert PlaceResolver.fingerprint_addon(copied) == base  # same content, same fingerprint
    gazetteer.write_text(gazetteer.read_text(encoding="utf-8") + "\n# 新加的村\n", encoding="utf-8")
    assert PlaceResolver.fingerprint_addon(copied) != base


def test_normalizer_fingerprint_follows_the_normalization_code():
    from policies.normalizer import ChineseNormalizer

    assert ChineseNormalizer.fingerprint_addon({}) == ChineseNormalizer.fingerprint_addon({})
    assert len(ChineseNormalizer.fingerprint_addon({})) == 64
