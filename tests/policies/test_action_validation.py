"""The Rasa server checks each action server answer against Rasa's schema as before, without checking the schema
itself every time (policies/action_validation.py)."""

import jsonschema
import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

import policies.gateway_channel  # noqa: F401  (installs the check, as when Rasa loads the channel)

ANSWERS = [
    {"events": [{"event": "slot", "name": "topic", "value": "transport"}], "responses": [{"text": "答"}]},
    {"events": [], "responses": []},
    {},
]
BAD_ANSWERS = [
    {"events": [{"event": "no_such_event"}]},
    {"responses": "答"},
    {"events": "slot"},
    [],
]


def rasas_own_check(result):
    """Rasa 3.6's RemoteAction._validate_action_result, as it ships."""
    jsonschema.validate(result, RemoteAction.action_response_format_spec())


@pytest.mark.parametrize("answer", ANSWERS)
def test_good_answers_pass(answer):
    rasas_own_check(answer)
    assert RemoteAction("action_respond", None)._validate_action_result(answer) is True


@pytest.mark.parametrize("answer", BAD_ANSWERS)
def test_bad_answers_fail_with_rasas_own_error_and_hint(answer):
    with pytest.raises(ValidationError) as rasas:
        rasas_own_check(answer)
    with pytest.raises(ValidationError) as ours:
        RemoteAction("action_respond", None)._validate_action_result(answer)
    assert ours.value.message.startswith(rasas.value.message)
    assert ours.value.path == rasas.value.path and "Failed to validate Action server response" in ours.value.message


def test_the_schema_is_not_checked_again_for_each_answer(monkeypatch):
    def checked(*args, **kwargs):
        raise AssertionError("the schema was checked again")

    for validator in (jsonschema.Draft202012Validator, jsonschema.Draft7Validator, jsonschema.Draft4Validator):
        monkeypatch.setattr(validator, "check_schema", classmethod(checked))
    for _ in range(3):
        assert RemoteAction("action_respond", None)._validate_action_result(ANSWERS[0]) is True
