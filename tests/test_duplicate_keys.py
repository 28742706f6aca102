"""A key given twice in one object of a JSON (or YAML) file is refused, naming the key (issue 28 item 6):
json and yaml.safe_load keep the last one, silently."""
import json

import pytest

from conftest import ROOT, cli_here
from hwnas.core.jsonio import DuplicateKeyError, loads_file
from hwnas.latency.lut import LUT, LUTError

DEMO_LUT = ROOT / "luts" / "amd-epyc-2c_ort-cpu_demo.json"
ARCH = ('{"space": "demo", "resolution": 24, "width": 1.0, "kernels": [[3], [3], [3], [3]], '
        '"expands": [[2], [2], [2], [2]]}')


def test_an_arch_file_with_a_key_twice_is_refused_naming_it(tmp_path):
    arch = tmp_path / "arch.json"
    arch.write_text(ARCH.replace('"resolution": 24,', '"resolution": 24, "resolution": 32,'))
    r = cli_here("predict", "--lut", str(DEMO_LUT), "--arch", str(arch))
    assert r.returncode == 2 and f"{arch}: key 'resolution' appears twice in one object" in r.stderr, r.stderr
    arch.write_text(ARCH)
    assert cli_here("predict", "--lut", str(DEMO_LUT), "--arch", str(arch)).returncode == 0


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_space_file_with_a_key_twice_is_refused_naming_it(tmp_path, suffix):
    space = json.loads((ROOT / "hwnas" / "spaces" / "demo.json").read_text())
    text = json.dumps(space)
    assert text.startswith('{"name": ')
    if suffix == ".json":
        text = '{"name": "first", ' + text[1:]
    else:
        pytest.importorskip("yaml")
        text = "name: first\n" + "".join(f"{k}: {json.dumps(v)}\n" for k, v in space.items())
    path = tmp_path / f"space{suffix}"
    path.write_text(text)
    r = cli_here("sample", "--space-file", str(path))
    assert r.returncode == 2 and "key 'name' appears twice in one object" in r.stderr and str(path) in r.stderr, r


def test_a_lut_with_an_entry_twice_is_refused_naming_it(tmp_path):
    text = DEMO_LUT.read_text()
    key = sorted(json.loads(text)["entries"])[0]
    entry = json.dumps(json.loads(text)["entries"][key])
    twice = text.replace('"entries": {', f'"entries": {{"{key}": {entry}, ', 1)
    assert twice != text
    path = tmp_path / "lut.json"
    path.write_text(twice)
    with pytest.raises(LUTError, match=f"key '{key}' appears twice"):
        LUT.load(path)


def test_nested_objects_are_checked_too(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": [{"b": 1, "c": 2, "b": 3}]}')
    with pytest.raises(ValueError, match="key 'b' appears twice"):
        loads_file(path, ValueError, "a test file")
    assert issubclass(DuplicateKeyError, ValueError)
    path.write_text('{"a": [{"b": 1}, {"b": 3}]}')
    assert loads_file(path, ValueError, "a test file") == {"a": [{"b": 1}, {"b": 3}]}
