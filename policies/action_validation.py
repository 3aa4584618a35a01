"""The Rasa server's check of each action server answer, without checking the schema again every time.

Rasa 3.6 validates every answer of the action server (RemoteAction._validate_action_result) with
`jsonschema.validate`, which first checks the (constant) schema against its metaschema: under load that check was
about 30% of the Rasa server's CPU (py-spy over 20 concurrent residents, issue 12), for nothing. `install()` checks the
schema once, keeps its validator, and validates each answer as before: the same schema, the same error (best_match,
with Rasa's hint appended). policies/gateway_channel.py installs it when Rasa loads the channel.
"""

from __future__ import annotations

from typing import Any, Dict, Text

from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL


def install() -> None:
    if getattr(RemoteAction._validate_action_result, "schema_checked_once", False):
        return
    schema = RemoteAction.action_response_format_spec()
    checker = validator_for(schema)
    checker.check_schema(schema)
    validator = checker(schema)

    def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
        error = best_match(validator.iter_errors(result))
        if error is not None:
            error.message += (
                f". Failed to validate Action server response from API, "
                f"make sure your response from the Action endpoint is valid. "
                f"For more information about the format visit "
                f"{DOCS_BASE_URL}/custom-actions"
            )
            raise error
        return True

    _validate_action_result.schema_checked_once = True  # type: ignore[attr-defined]
    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
