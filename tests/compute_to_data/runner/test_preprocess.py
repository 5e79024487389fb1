"""Schema-driven preprocessing (``compute_to_data.runner.preprocess``): what the model card
promises is what the runner computes. Bounds and categories come from the declared schema only;
dirty cells become nulls (0) instead of failing the job; unusable targets drop their rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from compute_to_data.runner import preprocess
from compute_to_data.runner.errors import InvalidData

SCHEMA = {
    "columns": [
        {"name": "age", "type": "integer", "min": 20, "max": 70},
        {"name": "flag", "type": "boolean"},
        {"name": "region", "type": "categorical", "categories": ["north", "south", "east"]},
        {"name": "when", "type": "datetime", "min": "2020-01-01", "max": "2020-01-11"},
        {"name": "const", "type": "float", "min": 5, "max": 5},
        {"name": "label", "type": "categorical", "categories": ["no", "yes"]},
        {"name": "score", "type": "float", "min": -10, "max": 10},
    ]
}


def table(**columns) -> dict[str, pa.ChunkedArray]:
    return {name: pa.chunked_array([pa.array(values, pa.string())]) for name, values in columns.items()}


def test_numbers_clip_scale_and_null_dirty_cells():
    specs = preprocess.feature_specs(SCHEMA, ["age", "const"])
    data = table(age=["20", "45", "70", "100", "-3", None, "abc", " 33 ", "1e1", "nan"], const=["5"] * 10)
    out = preprocess.features_matrix(data, specs)
    expected_age = [0.0, 0.5, 1.0, 1.0, 0.0, 0.0, 0.0, 13 / 50, 0.0, 0.0]
    assert out[:, 0].tolist() == pytest.approx(expected_age)
    assert out[:, 1].tolist() == [0.0] * 10  # min == max -> 0


def test_booleans_accept_words_and_numbers():
    specs = preprocess.feature_specs(SCHEMA, ["flag"])
    data = table(flag=["true", "False", "YES", "no", "1", "0", "t", "maybe", None, "2"])
    assert preprocess.features_matrix(data, specs)[:, 0].tolist() == [1, 0, 1, 0, 1, 0, 1, 0, 0, 0]
    assert preprocess.booleans(pa.array([True, False, None])).tolist()[:2] == [1.0, 0.0]


def test_categorical_one_hot_in_declared_order_unknown_all_zeros():
    specs = preprocess.feature_specs(SCHEMA, ["age", "region"])
    assert specs[1].output_indices == (1, 2, 3)
    data = table(age=["20"] * 5, region=["south", "north", "west", None, "east"])
    out = preprocess.features_matrix(data, specs)
    assert out[:, 1:].tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]]


def test_datetimes_from_iso_strings_with_and_without_zone():
    specs = preprocess.feature_specs(SCHEMA, ["when"])
    data = table(when=["2020-01-01", "2020-01-06T00:00:00", "2020-01-06T02:00:00+02:00", "2030-01-01", "later", None])
    out = preprocess.features_matrix(data, specs)[:, 0]
    assert out.tolist() == pytest.approx([0.0, 0.5, 0.5, 1.0, 0.0, 0.0])
    card = specs[0].describe()
    assert card["min"] == "2020-01-01" and card["min_epoch_seconds"] == 1577836800.0


def test_typed_parquet_style_columns():
    assert preprocess.numbers(pa.array([1, None, 3], pa.int64())).tolist()[::2] == [1.0, 3.0]
    stamps = pa.array([np.datetime64("2020-01-06T00:00:00", "s")], pa.timestamp("s"))
    assert preprocess.datetimes(stamps).tolist() == [1578268800.0]
    assert preprocess.category_codes(pa.array([1.0, 2.0, None]), ["1", "2"]).tolist() == [0, 1, -1]


def test_classifier_target_drops_unusable_rows():
    spec = preprocess.target_spec(SCHEMA, "label", "classifier")
    kept, codes = preprocess.target_values(table(label=["yes", "no", None, "maybe", "yes"]), spec)
    assert kept.tolist() == [0, 1, 4] and codes.tolist() == [1, 0, 1]
    bool_spec = preprocess.target_spec(SCHEMA, "flag", "classifier")
    assert bool_spec.classes == ("false", "true")


def test_regression_target_is_clipped_and_scaled():
    spec = preprocess.target_spec(SCHEMA, "score", "regressor")
    kept, values = preprocess.target_values(table(score=["0", "10", "-20", None, "x"]), spec)
    assert kept.tolist() == [0, 1, 2]
    assert values.tolist() == pytest.approx([0.5, 1.0, 0.0])


def test_missing_column_and_missing_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("age,flag\n30,true\n")
    with pytest.raises(InvalidData, match="'region'"):
        preprocess.table_read(path, "csv", ["age", "region"])
    with pytest.raises(InvalidData, match="missing"):
        preprocess.table_read(tmp_path / "nope.csv", "csv", ["age"])
    columns, rows = preprocess.table_read(path, "csv", ["flag"])
    assert rows == 1 and columns["flag"].type == pa.binary()  # bytes: bad UTF-8 must not fail the file


def test_feature_spec_describes_the_transform():
    specs = preprocess.feature_specs(SCHEMA, ["age", "flag", "region"])
    described = [s.describe() for s in specs]
    assert described[0]["min"] == 20 and described[0]["max"] == 70 and described[0]["output_indices"] == [0]
    assert described[2]["categories"] == ["north", "south", "east"]
    assert all("transform" in d for d in described)
    assert preprocess.input_width(specs) == 5
