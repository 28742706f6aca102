"""hwnas.core.registry: one registry for profilers, strategies, evaluators and space kinds.

The Registry on its own; every built-in of every kind (each loads, names the object its target says, has a
docstring); the one option-signature error of every kind; and the worked plugins of docs/plugins.md, installed
from that page as a real distribution (a dist-info with entry_points.txt on sys.path) and used."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, cli_here

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
from hwnas.core.registry import BUILTIN, HOMES, REQUIRED, PluginInfo, Registry, registries, resolve

DOC = ROOT / "docs" / "plugins.md"


class WidgetError(ValueError):
    pass


def install(tmp_path: Path, monkeypatch, dist: str, entry_points: dict[str, dict[str, str]],
            modules: dict[str, str] = {}) -> None:
    """A distribution called ``dist`` as pip leaves it (``NAME.dist-info/METADATA`` + ``entry_points.txt``),
    with its ``modules`` (dotted name -> source), put first on sys.path."""
    for name, source in modules.items():
        path = tmp_path.joinpath(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(tmp_path).parents:
            if parent != Path("."):
                (tmp_path / parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(source))
    info = tmp_path / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for group, eps in entry_points.items()))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in modules:
        monkeypatch.delitem(sys.modules, name, raising=False)


@pytest.fixture
def forget_modules():
    """Modules a test imports from its tmp dir are dropped afterwards (the next test's may differ)."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.split(".")[0] in ("my_package", "widgets_plugin", "widgets_broken"):
            del sys.modules[name]


# -- the Registry on its own ---------------------------------------------------------------------------
def test_register_an_object_a_decorator_or_a_lazy_string():
    reg = Registry("widget", "hwnas.test-widgets", WidgetError)

    @reg.register("square")
    def square(side: int = 1):
        """A square."""
        return side * side

    reg.register("dumps", "json:dumps")
    reg.register("loads", json.loads)
    assert reg.names() == ["dumps", "loads", "square"] and "square" in reg and "circle" not in reg
    assert reg.get("square") is square and reg.create("square", side=3) == 9
    assert reg.get("dumps") is json.dumps and reg.where("dumps") == (BUILTIN, "json:dumps")
    assert reg.where("square") == (BUILTIN, f"{__name__}:test_register_an_object_a_decorator_or_a_lazy_string."
                                             "<locals>.square")


def test_a_lazy_string_is_not_imported_until_asked_for_and_its_module_s_decorator_replaces_it(tmp_path, monkeypatch,
                                                                                            forget_modules):
    install(tmp_path, monkeypatch, "widgets-plugin", {}, {"widgets_plugin.shapes": '''
        from test_registry_widgets import REG

        @REG.register("hexagon")
        class Hexagon:
            """Six sides."""
    '''})
    import types

    home = types.ModuleType("test_registry_widgets")
    home.REG = reg = Registry("widget", "hwnas.test-widgets", WidgetError)
    monkeypatch.setitem(sys.modules, "test_registry_widgets", home)
    reg.register("hexagon", "widgets_plugin.shapes:Hexagon")
    assert reg.names() == ["hexagon"] and "widgets_plugin.shapes" not in sys.modules
    cls = reg.get("hexagon")
    assert cls.__name__ == "Hexagon" and reg._builtins["hexagon"] is cls  # the object, no longer the string
    with pytest.raises(ValueError, match="'hexagon' is registered twice"):
        reg.register("hexagon", json.dumps)  # another object under a taken name: a mistake, said at once


def test_an_unknown_name_is_refused_with_the_known_ones_and_the_entry_point_group():
    reg = Registry("widget", "hwnas.test-widgets", WidgetError)
    reg.register("square", lambda side=1: side)
    with pytest.raises(WidgetError, match=r"unknown widget 'circle'; known: \['square'\] \(plugins register under "
                                          r"the 'hwnas.test-widgets' entry-point group\)"):
        reg.get("circle")
    with pytest.raises(WidgetError, match="unknown widget"):
        reg.get(["not", "hashable"])  # a space file's "kind" may be anything JSON


def test_options_are_checked_against_the_signature_in_one_wording():
    reg = Registry("widget", "hwnas.test-widgets", WidgetError, hidden=("seed",))

    class Box:
        """A box."""

        def __init__(self, width, height=2, seed=0):
            self.width, self.height = width, height

    reg.register("box", Box)
    reg.register("anything", lambda **kw: kw)
    assert reg.options("box") == {"width": REQUIRED, "height": 2}  # seed: set by the caller, not listed
    assert reg.create("box", width=1, seed=3).height == 2
    with pytest.raises(WidgetError) as e:
        reg.create("box", width=1, hieght=3)
    assert isinstance(e.value, TypeError)  # as Python's own unexpected keyword: callers catching it keep working
    assert str(e.value) == "widget box takes no option(s) ['hieght']; its options: width (required), height (default 2)"
    assert reg.create("anything", whatever=1) == {"whatever": 1}  # **kwargs: nothing to check against
    assert reg.options("anything") is None


def test_outside_plugins_cannot_shadow_built_ins_and_a_broken_one_hides_no_other(tmp_path, monkeypatch,
                                                                                forget_modules):
    install(tmp_path, monkeypatch, "widgets-plugin",
            {"hwnas.test-widgets": {"circle": "widgets_plugin.round:Circle", "square": "widgets_plugin.round:Circle",
                                    "broken": "widgets_broken.nothing:Here"}},
            {"widgets_plugin.round": '''
                class Circle:
                    """Round."""

                    def __init__(self, radius=1):
                        self.radius = radius
            '''})
    reg = Registry("widget", "hwnas.test-widgets", WidgetError)
    reg.register("square", lambda side=1: side)
    assert reg.names() == ["broken", "circle", "square"] and "widgets_plugin.round" not in sys.modules
    assert reg.create("circle", radius=2).radius == 2 and reg.get("square")() == 1  # the built-in square
    assert reg.where("circle") == ("widgets-plugin", "widgets_plugin.round:Circle")
    with pytest.raises(WidgetError, match=r"widget plugin 'broken' \(widgets_broken.nothing:Here, from widgets-plugin\)"
                                          r" failed to load: ModuleNotFoundError"):
        reg.get("broken")
    infos = {i.name: i for i in reg.infos()}
    assert infos["circle"] == PluginInfo("circle", "widget", "widgets-plugin", "widgets_plugin.round:Circle", None)
    assert infos["broken"].unavailable.startswith("failed to load: ModuleNotFoundError")
    assert infos["square"].source == BUILTIN and infos["square"].unavailable is None


# -- every built-in of every kind ------------------------------------------------------------------------
BUILTINS = [(r.kind, name) for r in registries() for name in sorted(r._builtins)]


def test_every_kind_has_its_registry_and_group():
    assert {r.kind: r.group for r in registries()} == {
        "profiler": "hwnas.profilers", "strategy": "hwnas.strategies", "evaluator": "hwnas.evaluators",
        "space": "hwnas.spaces"}
    assert {k for k, _ in BUILTINS} == set(HOMES)
    from hwnas.app.commands.plugins import PLUGIN_KINDS

    assert list(PLUGIN_KINDS) == list(HOMES)  # the --kind choices, written out so the parser imports nothing


@pytest.mark.parametrize("kind, name", BUILTINS, ids=[f"{k}:{n}" for k, n in BUILTINS])
def test_every_built_in_loads_is_what_its_target_names_and_says_what_it_is(kind, name):
    (reg,) = registries(kind)
    obj = reg.get(name)
    source, target = reg.where(name)
    assert source == BUILTIN and resolve(target) is obj, (target, obj)
    doc = obj.__doc__ or ""
    assert doc.strip() and not doc.startswith(f"{obj.__name__}("), f"{target} has no docstring of its own"
    if kind == "profiler":
        from hwnas.profilers import Profiler

        assert isinstance(obj(), Profiler)
    elif kind == "strategy":
        from hwnas.search.strategies import Strategy

        assert issubclass(obj, Strategy) and obj.name == name
    elif kind == "space":
        assert callable(obj.from_dict) and obj.kind == name
    else:
        assert callable(obj) and reg.options(name) is not None  # every built-in evaluator's options are checked


def test_loading_every_built_in_registers_no_name_its_registry_did_not_know():
    """A module's decorator that registers a name nobody declared would be invisible to listing until used."""
    before = {r.kind: r.names() for r in registries()}
    for r in registries():
        for name in r.names():
            r.get(name)
    assert {r.kind: r.names() for r in registries()} == before


def test_naming_a_built_in_imports_only_its_own_module():
    code = ("import sys; from hwnas.evaluate import create_evaluator, list_evaluators; names = list_evaluators(); "
            "heavy = ('hwnas.evaluate.proxies', 'hwnas.evaluate.supernet', 'hwnas.evaluate.train', 'hwnas.spaces.cells'); "
            "assert 'supernet' in names and not [m for m in heavy if m in sys.modules], names; "
            "create_evaluator('proxy:synflow'); print(sorted(m for m in heavy if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["['hwnas.evaluate.proxies']"], r.stderr


def test_importing_the_cli_imports_no_registry():
    r = subprocess.run([sys.executable, "-c", "import sys, hwnas.app.cli; hwnas.app.cli.build_parser(); "
                        "print('hwnas.core.registry' in sys.modules, 'importlib.metadata' in sys.modules)"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.stdout.split() == ["False", "False"], r.stderr


# -- the one option error, for every kind -------------------------------------------------------------
def _profiler(bad):
    from hwnas.profilers import create_profiler

    return create_profiler("torch-cpu", **bad)


def _strategy(bad):
    from hwnas.search.strategies import create_strategy
    from hwnas.spaces.base import get_space

    return create_strategy("nsga2", get_space("demo"), population=4, seed=0, **bad)


def _evaluator(bad):
    from hwnas.evaluate import create_evaluator

    return create_evaluator("train", **bad)


def _space(bad):
    from hwnas.spaces.base import SPACES

    return SPACES.create("cell", name="x", **bad)


@pytest.mark.parametrize("make, error, begins, lists", [
    (_profiler, "ProfilerConfigError", "profiler torch-cpu", "threads (default 1), pin_cpu (default None)"),
    (_strategy, "SearchError", "strategy nsga2", "mutate_prob (default None), crossover_prob (default 0.9)"),
    (_evaluator, "EvaluatorError", "evaluator train", "data (default None), split_seed (default 0)"),
    (_space, "SpaceError", "space kind cell", "name (required), channels (default (16, 32, 64))"),
], ids=["profiler", "strategy", "evaluator", "space"])
def test_an_option_no_plugin_takes_is_refused_in_one_wording_for_every_kind(make, error, begins, lists):
    with pytest.raises(TypeError) as e:
        make({"colour": "red"})
    assert error in [c.__name__ for c in type(e.value).__mro__]
    assert str(e.value).startswith(f"{begins} takes no option(s) ['colour']; its options: {lists}"), str(e.value)


# -- the worked plugins of docs/plugins.md, installed from the page -----------------------------------------
def doc_plugins() -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The page's ``# my_package/NAME.py`` code blocks (module -> source) and its entry-point tables."""
    text = DOC.read_text()
    modules = {f"my_package.{m.group(1)}": m.group(0).split("\n", 1)[1]
               for m in re.finditer(r"(?<=```python\n)# my_package/(\w+)\.py\n.*?(?=```)", text, flags=re.S)}
    groups: dict[str, dict[str, str]] = {}
    for block in re.findall(r"```toml\n(.*?)```", text, flags=re.S):
        for group, eps in tomllib.loads(block).get("project", {}).get("entry-points", {}).items():
            groups.setdefault(group, {}).update(eps)
    return modules, groups


@pytest.fixture
def my_package(tmp_path, monkeypatch, forget_modules):
    modules, groups = doc_plugins()
    assert set(modules) == {"my_package.npu", "my_package.climb", "my_package.macs", "my_package.nb201",
                            "my_package.chain"}
    assert set(groups) == {r.group for r in registries()} | {"hwnas.blocks"}  # block types: the chain kind's
    install(tmp_path / "site", monkeypatch, "my-package", groups, modules)
    return tmp_path


def test_the_documented_strategy_and_evaluator_run_a_real_search(my_package, demo_lut_path):
    from hwnas.evaluate import create_evaluator, list_evaluators
    from hwnas.search import run_search
    from hwnas.search.strategies import create_strategy, list_strategies, strategy_options
    from hwnas.spaces.base import get_space

    assert "climb" in list_strategies() and "macs" in list_evaluators() and "my_package.climb" not in sys.modules
    assert strategy_options("climb") == {"mutate_prob": None, "steps": 1}
    with pytest.raises(TypeError) as e:
        create_strategy("climb", get_space("demo"), population=4, stpes=2)
    assert f"`{e.value}`" in DOC.read_text()  # the page shows the real message
    archs = get_space("demo").sample_distinct(3, 0)
    assert create_evaluator("macs", scale=1).evaluate(archs) == [sum(d.macs for d in a.layers()) for a in archs]
    r = run_search(demo_lut_path, my_package / "run", evaluator="macs", strategy="climb",
                   strategy_options={"steps": 2}, population=6, generations=3, seed=0, progress=False)
    assert r.evaluations == 18 and r.front
    again = run_search(demo_lut_path, my_package / "again", evaluator="macs", strategy="climb",
                       strategy_options={"steps": 2}, population=6, generations=3, seed=0, progress=False)
    assert [x.arch_id for x in again.front] == [x.arch_id for x in r.front]


def test_the_documented_strategy_through_hwnas_search(my_package, demo_lut_path):
    r = cli_here("search", "--lut", str(demo_lut_path), "--strategy", "climb", "--strategy-option", "steps=2",
                 "--evaluator", "macs", "--population", "4", "--generations", "2", "--out", str(my_package / "cli"))
    assert r.returncode in (0, 1) and "search done" in r.stdout, r.stderr  # 1: nothing met a budget (none given)


def test_the_documented_space_kind_reads_a_file_of_that_kind(my_package, tmp_path):
    from hwnas.spaces.cells import CellSpace
    from hwnas.spaces.base import SpaceError, get_space

    path = tmp_path / "nb201-c100.json"
    path.write_text(json.dumps({"kind": "nb201", "name": "nb201-c100", "num_classes": 100}))
    space = get_space(path)
    assert isinstance(space, CellSpace) and space.kind == "cell" and space.cells_per_stage == 5
    assert space.num_classes == 100 and len(space.sample(0).layers()) > 0
    path.write_text(json.dumps({"kind": "nb201", "name": "x", "nodes": 5}))
    with pytest.raises(SpaceError, match=r"an nb201 space fixes \['nodes'\]"):
        get_space(path)
    path.write_text(json.dumps({"kind": "nb201", "name": "nb201-c100"}))
    r = cli_here("sample", "--space", str(path), "--out", str(tmp_path / "arch.json"))
    assert r.returncode == 0 and json.loads((tmp_path / "arch.json").read_text()), r.stderr


def test_hwnas_plugins_lists_every_kind_with_where_it_came_from(my_package):
    r = cli_here("plugins")
    assert r.returncode == 0, r.stderr
    rows = {tuple(line.split()[:2]): line for line in r.stdout.splitlines()}
    for kind, name in BUILTINS:
        assert re.match(rf"{kind} +{re.escape(name)} +builtin +(available|unavailable: )", rows[kind, name])
    for kind, name in (("strategy", "climb"), ("evaluator", "macs"), ("space", "nb201"), ("space", "chain")):
        assert re.match(rf"{kind} +{name} +my-package +available$", rows[kind, name]), rows[kind, name]
    # the page's NPU example needs its SDK, absent here: listed with the reason, hiding nothing
    assert re.match(r"profiler +my-npu +my-package +unavailable: failed to load: ModuleNotFoundError: "
                    r"No module named 'my_runtime'", rows["profiler", "my-npu"])
    strategies = cli_here("plugins", "--kind", "strategy")
    assert {line.split()[0] for line in strategies.stdout.splitlines()} == {"strategy"}
    listed = json.loads(cli_here("plugins", "--kind", "evaluator", "--json").stdout)
    assert {"name": "macs", "kind": "evaluator", "source": "my-package", "target": "my_package.macs:MacsScore",
            "unavailable": None} in listed
    assert cli_here("plugins", "--kind", "widget").returncode == 2


def test_profile_list_still_lists_the_profilers_as_before(my_package):
    r = cli_here("profile", "--list")
    assert r.returncode == 0 and re.search(r"^ort-cpu +available  \[builtin\]$", r.stdout, flags=re.M), r.stdout
    assert re.search(r"^my-npu +unavailable: failed to load: ModuleNotFoundError.*\[my-package\]$", r.stdout,
                     flags=re.M), r.stdout
