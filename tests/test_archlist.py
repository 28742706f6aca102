"""Lists of architectures in one file (hwnas.spaces.archlist): JSON list, JSON Lines, NAS-Bench-201 strings."""
import json

import pytest

from hwnas.spaces.archlist import read_arch_list
from hwnas.spaces.base import ArchError, get_space

NB201 = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
         "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
         "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]


@pytest.fixture(scope="module")
def cell():
    return get_space("cell")


def test_nb201_strings_one_a_line_round_trip(cell, tmp_path):
    f = tmp_path / "nb201.txt"
    f.write_text("# three cells\n" + "\n".join(NB201) + "\n\n")
    archs = read_arch_list(cell, f)
    assert [a.nb201 for a in archs] == NB201
    assert archs[0].ops == ("conv3x3", "conv3x3", "avgpool3x3", "skip", "conv3x3", "skip")
    assert archs[2].ops == ("none",) * 6 and not archs[2].connected


def test_json_list_and_json_lines_give_the_same_archs(demo, tmp_path):
    archs = [demo.sample(i) for i in range(3)]
    as_list, as_lines = tmp_path / "a.json", tmp_path / "a.jsonl"
    as_list.write_text(json.dumps([a.to_dict() for a in archs]))
    as_lines.write_text("\n".join(a.to_json() for a in archs) + "\n")
    assert [a.id for a in read_arch_list(demo, as_list)] == [a.id for a in archs]
    assert [a.id for a in read_arch_list(demo, as_lines)] == [a.id for a in archs]


@pytest.mark.parametrize("text, message", [
    (NB201[0] + "\n|nor_conv_3x3~1|+|a~0|b~1|+|c~0|d~1|e~2|\n", r"line 2: 'nor_conv_3x3~1' .* is not OP~0"),
    ("|none~0|+|none~0|none~1|\n", "is not a NAS-Bench-201 cell string of this space's 4 nodes"),
    ("# nothing\n\n", "lists no architecture"),
])
def test_a_bad_line_is_named(cell, tmp_path, text, message):
    f = tmp_path / "bad.txt"
    f.write_text(text)
    with pytest.raises(ArchError, match=message):
        read_arch_list(cell, f)


def test_a_kind_without_a_text_form_says_what_to_give(demo, tmp_path):
    f = tmp_path / "nb201.txt"
    f.write_text(NB201[0] + "\n")
    with pytest.raises(ArchError, match="has no text form for archs; give a JSON list of arch objects"):
        read_arch_list(demo, f)


def test_an_item_of_a_json_list_is_named(demo, tmp_path):
    f = tmp_path / "a.json"
    f.write_text(json.dumps([demo.sample(0).to_dict(), {"resolution": 5}]))
    with pytest.raises(ArchError, match=r"item 1"):
        read_arch_list(demo, f)
