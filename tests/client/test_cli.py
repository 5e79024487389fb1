"""marketplace_client.cli: exit codes by error class and parameters from JSON and key=value pairs."""

from __future__ import annotations

import pytest

from marketplace_client import (
    TransportError,
)
from marketplace_client.cli import EXIT_CODES, exit_code_for, parse_parameters
from marketplace_client.errors import error_from_response


def test_cli_exit_codes_follow_the_error_class():
    assert exit_code_for(error_from_response(401, {})) == 3
    assert exit_code_for(error_from_response(403, {})) == 4
    assert exit_code_for(error_from_response(404, {})) == 5
    assert exit_code_for(error_from_response(400, {})) == 6
    assert exit_code_for(error_from_response(409, {})) == 7
    assert exit_code_for(error_from_response(429, {})) == 8
    assert exit_code_for(error_from_response(503, {})) == 9
    assert exit_code_for(TransportError("down")) == 9
    assert set(EXIT_CODES) == set(range(12))


def test_cli_parameters_come_from_json_and_key_value_pairs(tmp_path):
    spec = tmp_path / "p.json"
    spec.write_text('{"epochs": 2, "target": "x"}')
    assert parse_parameters(["epochs=4", "hidden=[8, 4]", "target=label", "private_metrics=true"], f"@{spec}") == {
        "epochs": 4,
        "hidden": [8, 4],
        "target": "label",
        "private_metrics": True,
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_parameters(["epochs"], None)
