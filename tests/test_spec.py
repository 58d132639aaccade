import json

import pytest
from hypothesis import given, settings

from designer import zoo
from designer.spec import NetworkSpec, SpecError, Stage, Stem, from_tinynas, to_tinynas
from tests.conftest import small_specs

R50_TINYNAS = """{'best_structures': [[
 {'class': 'ConvKXBNRELU', 'in': 3, 'out': 32, 's': 2, 'k': 3},
 {'class': 'SuperResK1KXK1', 'in': 32, 'out': 128, 's': 2, 'k': 5, 'L': 1, 'btn': 40},
 {'class': 'SuperResK1KXK1', 'in': 128, 'out': 512, 's': 2, 'k': 5, 'L': 11, 'btn': 48},
 {'class': 'SuperResK1KXK1', 'in': 512, 'out': 872, 's': 2, 'k': 5, 'L': 12, 'btn': 88},
 {'class': 'SuperResK1KXK1', 'in': 872, 'out': 1024, 's': 1, 'k': 5, 'L': 13, 'btn': 104},
 {'class': 'SuperResK1KXK1', 'in': 1024, 'out': 1232, 's': 2, 'k': 5, 'L': 15, 'btn': 120}]],
 'space_arch': 'CnnNet'}"""


@settings(max_examples=60, deadline=None)
@given(small_specs())
def test_json_round_trip(spec):
    again = NetworkSpec.from_json(spec.to_json())
    assert again == spec
    assert json.loads(again.to_json()) == spec.to_dict()


def test_save_and_load(tmp_path):
    spec = zoo.load("deepmad-r50")
    path = tmp_path / "r50.json"
    spec.save(path)
    assert NetworkSpec.load(path) == spec


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["stages"][2].update(btn=0), r"stages\[2\]\.btn: must be a positive integer, got 0"),
    (lambda d: d["stages"][1].update(stride=3), r"stages\[1\]\.stride: stride must be 1 or 2, got 3"),
    (lambda d: d["stages"][0].update(k=4), r"stages\[0\]\.k: kernel size must be odd"),
    (lambda d: d["stages"][0].update(family="dense"), r"stages\[0\]\.family: must be one of"),
    (lambda d: d["stages"][3].pop("L"), r"stages\[3\]: missing field\(s\) L"),
    (lambda d: d["stem"].update(width=3), r"stem: unknown field\(s\) width"),
    (lambda d: d.update(resolution=-1), r"resolution: must be a positive integer"),
    (lambda d: d.update(stages=[]), r"stages: must be a non-empty list"),
    (lambda d: d.update(head=0), r"head: must be a positive integer"),
    (lambda d: d.update(colour="red"), r"spec: unknown field\(s\) colour"),
    (lambda d: d.pop("stem"), r"stem: missing"),
    (lambda d: d["stages"][0].update(out=2.5), r"stages\[0\]\.out: must be a positive integer, got 2.5"),
])
def test_validation_names_the_field(mutate, message):
    data = zoo.load("deepmad-r50").to_dict()
    mutate(data)
    with pytest.raises(SpecError, match=message):
        NetworkSpec.from_dict(data)


def test_resolution_too_small_is_reported():
    with pytest.raises(SpecError, match="resolution"):
        NetworkSpec(resolution=0, stem=Stem(8), stages=[Stage("basic", 8, 8, 3, 1, 2)])


def test_not_json_is_reported():
    with pytest.raises(SpecError, match="not valid JSON"):
        NetworkSpec.from_json("{stages: ")


def test_tinynas_import_matches_released_r50():
    spec = from_tinynas(R50_TINYNAS, name="deepmad-r50")
    assert spec == zoo.load("deepmad-r50")


def test_tinynas_file_with_head_round_trips(tmp_path):
    spec = zoo.load("deepmad-29m-224")
    path = tmp_path / "best_structure.txt"
    path.write_text(repr({"best_structures": [to_tinynas(spec)], "space_arch": "CnnNet"}))
    loaded = NetworkSpec.load(path)
    assert loaded.head == 1792
    assert loaded.stages == spec.stages and loaded.stem == spec.stem


@pytest.mark.parametrize("text, message", [
    ("{'best_structures': [[{'class': 'SuperResK1KXK1', 'in': 3}]]}", r"block\[0\]\.class: the stem must be"),
    ("[{'class': 'ConvKXBNRELU', 'in': 3, 'out': 8, 's': 2, 'k': 3},"
     " {'class': 'SuperResK1KXK1', 'in': 16, 'out': 8, 's': 2, 'k': 3, 'L': 1, 'btn': 8}]",
     r"block\[1\]\.in: 16 does not match the previous block's out \(8\)"),
    ("[{'class': 'ConvKXBNRELU', 'in': 3, 'out': 8, 's': 2, 'k': 3},"
     " {'class': 'SuperResK1DWK1', 'in': 8, 'out': 8, 's': 2, 'k': 3, 'L': 1, 'btn': 8}]",
     r"block\[1\]\.class: unsupported 'SuperResK1DWK1'"),
    ("[{'class': 'ConvKXBNRELU', 'in': 3, 'out': 8, 's': 2, 'k': 3},"
     " {'class': 'SuperResK1KXK1', 'in': 8, 'out': 8, 's': 2, 'k': 3, 'btn': 8}]",
     r"block\[1\]: missing key 'L'"),
    ("{'space': 1}", "must have the key 'best_structures'"),
    ("not python", "neither spec JSON nor"),
])
def test_tinynas_errors(text, message):
    with pytest.raises(SpecError, match=message):
        from_tinynas(text)
