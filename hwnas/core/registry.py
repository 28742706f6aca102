"""One registry for every kind of plugin: profilers, search strategies, evaluators and space kinds.

Built-ins are registered where they are defined, with a decorator (``@STRATEGIES.register("nsga2")``). One
that lives in a module too heavy to import just to learn its name (torch) is also named beside its registry
as a lazy ``"module:attr"`` string, which that module's decorator replaces with the object when it is first
imported: so listing names imports nothing (timm's ``_registry`` keeps the same name -> module map).
Outside packages add plugins through the kind's entry-point group, found with
``importlib.metadata.entry_points(group=...)`` as pluggy finds its plugins, and loaded only when asked for
by name. A plugin cannot shadow a built-in; a broken one is listed with its error and hides no other.
``create(name, **options)`` checks option names against the constructor's signature, so a mistyped option is
refused with the ones it takes, in one wording for every kind.

Standard library only: ``hwnas.profilers``, which imports nothing of hwnas but the descriptor protocol,
uses it too.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable

BUILTIN = "builtin"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # an option's "default" when the constructor has none

# kind -> where its registry lives (importing a registry's module registers its built-ins)
HOMES = {"profiler": "hwnas.profilers.registry:PROFILERS", "strategy": "hwnas.search.strategies:STRATEGIES",
         "evaluator": "hwnas.evaluate.base:EVALUATORS", "space": "hwnas.spaces.base:SPACES"}


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin, as ``hwnas plugins`` lists it."""

    name: str
    kind: str                # "profiler", "strategy", "evaluator" or "space"
    source: str              # "builtin", or the distribution whose entry point registered it
    target: str              # "module:attr"
    unavailable: str | None  # None when usable here, else why not: it failed to load; a profiler's availability()


def resolve(target: str) -> Any:
    """The object a ``"module:attr.sub"`` string names, importing its module (what an entry point's load does)."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module.strip())
    for part in filter(None, attr.split("[")[0].strip().split(".")):
        obj = getattr(obj, part)
    return obj


def target_of(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__qualname__)}"


class Registry:
    """The plugins of one kind, by name: built-ins registered in code plus the entry-point group ``group``.

    ``error``: the kind's exception for an unknown name (``SearchError``, ``EvaluatorError``…); an unknown
    option raises a subclass that is also a ``TypeError``, as Python's own unexpected keyword argument does,
    so a caller that catches ``TypeError`` to say which flag gave the options keeps working. ``label``: what
    messages call one ("space kind"). ``hidden``: options the caller always sets itself (a strategy's space,
    population and seed): accepted, never listed as the user's to set. ``available(obj)``: why a loaded plugin
    cannot run here, or None (profilers).
    """

    def __init__(self, kind: str, group: str, error: type[Exception] = LookupError, *, label: str | None = None,
                 hidden: Iterable[str] = (), available: Callable[[Any], str | None] | None = None):
        self.kind, self.group, self.error, self.label = kind, group, error, label or kind
        self.option_error: type[Exception] = error if issubclass(error, TypeError) else type(
            "UnknownOption", (error, TypeError),
            {"__module__": __name__, "__doc__": f"An option the {kind} does not take ({error.__name__}, TypeError)."})
        self.hidden = tuple(hidden)
        self._available = available
        self._builtins: dict[str, Any] = {}  # name -> the object, or a lazy "module:attr" string

    # -- registering -----------------------------------------------------------
    def register(self, name: str, target: Any = None) -> Any:
        """Register ``target`` (an object, or a lazy ``"module:attr"`` string) as built-in ``name``; without a
        target, a decorator. The object a lazy string's module registers under the same name replaces it."""
        if target is None:
            return lambda obj: self.register(name, obj)
        old = self._builtins.get(name)
        replaces_lazy = isinstance(old, str) and not isinstance(target, str) and \
            old.partition(":")[0] == getattr(target, "__module__", None)
        if old is not None and old is not target and not replaces_lazy:
            raise ValueError(f"{self.label} {name!r} is registered twice: {self._target(old)} and "
                             f"{self._target(target)}")
        self._builtins[name] = target
        return target

    # -- finding -----------------------------------------------------------------
    def _plugins(self) -> dict[str, Any]:
        """Entry points of the group, by name: the first distribution's for a name, none for a built-in's."""
        from importlib.metadata import entry_points  # not at import: a few ms that `import hwnas.app.cli` never needs

        found: dict[str, Any] = {}
        for ep in entry_points(group=self.group):
            if ep.name not in self._builtins and ep.name not in found:
                found[ep.name] = ep
        return found

    def names(self) -> list[str]:
        """Every registered name, built-ins and plugins, without importing any of them."""
        return sorted({*self._builtins, *self._plugins()})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._builtins or name in self._plugins())

    def _target(self, obj: Any) -> str:
        return obj if isinstance(obj, str) else target_of(obj)

    def _resolve(self, target: str) -> Any:
        return resolve(target)

    def where(self, name: str, plugins: dict[str, Any] | None = None) -> tuple[str, str]:
        """(source, target) of ``name``, nothing imported: ``builtin`` or the distribution, and ``module:attr``."""
        if isinstance(name, str) and name in self._builtins:
            return BUILTIN, self._target(self._builtins[name])
        ep = (self._plugins() if plugins is None else plugins).get(name) if isinstance(name, str) else None
        if ep is None:
            raise self.error(f"unknown {self.label} {name!r}; known: {self.names()} "
                             f"(plugins register under the {self.group!r} entry-point group)")
        dist = getattr(ep, "dist", None)
        return (dist.name if dist is not None else "entry point"), ep.value

    def get(self, name: str) -> Any:
        """The plugin called ``name``, imported now; an unknown name is refused with the known ones."""
        source, target = self.where(name)
        if source == BUILTIN:
            obj = self._builtins[name]
            if not isinstance(obj, str):
                return obj
            loaded = self._resolve(obj)
            now = self._builtins[name]  # importing the module usually registered the object itself
            return loaded if isinstance(now, str) else now
        try:
            return self._resolve(target)
        except Exception as e:  # the plugin's fault, not hwnas's: name it and its distribution
            raise self.error(f"{self.label} plugin {name!r} ({target}, from {source}) failed to load: "
                             f"{type(e).__name__}: {e}") from e

    # -- creating ------------------------------------------------------------------
    def options(self, name: str) -> dict[str, Any] | None:
        """The keyword options plugin ``name`` takes, with their defaults (``REQUIRED`` where none), not the
        hidden ones; None when it takes any keyword (``**kwargs``) or has no signature to read."""
        import inspect  # not at import: ~5 ms that the CLI's start never needs

        try:
            params = inspect.signature(self.get(name)).parameters.values()
        except (TypeError, ValueError):
            return None
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return {p.name: REQUIRED if p.default is p.empty else p.default for p in params
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in self.hidden}

    def check_options(self, name: str, options: Iterable[str]) -> None:
        """Refuse option names plugin ``name`` does not take, listing the ones it does (never ignore a typo)."""
        allowed = self.options(name)
        if allowed is None:
            return
        unknown = sorted(set(options) - set(allowed) - set(self.hidden))
        if unknown:
            listed = ", ".join(f"{k} (required)" if v is REQUIRED else f"{k} (default {v!r})"
                               for k, v in allowed.items()) or "none"
            raise self.option_error(f"{self.label} {name} takes no option(s) {unknown}; its options: {listed}")

    def create(self, name: str, /, *args: Any, **options: Any) -> Any:
        """``get(name)(*args, **options)``, the option names checked first."""
        factory = self.get(name)
        self.check_options(name, options)
        return factory(*args, **options)

    # -- listing -------------------------------------------------------------------
    def infos(self) -> list[PluginInfo]:
        """Every plugin with where it came from, each loaded (and, for profilers, asked whether it can run
        here): one that fails is listed with its error, never allowed to hide the others."""
        plugins = self._plugins()
        out = []
        for name in sorted({*self._builtins, *plugins}):
            source, target = self.where(name, plugins)
            try:
                obj = self.get(name) if source == BUILTIN else self._resolve(target)
                reason = self._available(obj) if self._available is not None else None
            except Exception as e:
                reason = f"failed to load: {type(e).__name__}: {e}"
            out.append(PluginInfo(name, self.kind, source, target, reason))
        return out


def registries(kind: str | None = None) -> list[Registry]:
    """The registry of ``kind`` (one of :data:`HOMES`), or of every kind, importing their modules now."""
    if kind is not None and kind not in HOMES:
        raise ValueError(f"unknown plugin kind {kind!r}; choose from {list(HOMES)}")
    return [resolve(home) for k, home in HOMES.items() if kind in (None, k)]


# how each kind's options are given on the command line (``hwnas plugins --options NAME`` says it)
HOW_SET = {"evaluator": "--evaluator-option KEY=VALUE (hwnas search, score)",
           "strategy": "--strategy-option KEY=VALUE (hwnas search)",
           "profiler": "the profiler flags (--threads, --pin-cpu, --quick, --precision, --batch-size, --device)",
           "space": "the fields of a space file"}


@dataclass(frozen=True)
class PluginOptions:
    """A plugin's keyword options with their defaults (``REQUIRED`` where it has none), read from its constructor's
    signature as ``Registry.create`` checks them; ``options`` None: it takes any keyword."""

    kind: str
    name: str
    target: str
    options: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """``hwnas plugins --options NAME --json``: a required option's default is null, and it is in ``required``."""
        opts = self.options
        return {"kind": self.kind, "name": self.name, "target": self.target,
                "options": None if opts is None else {k: None if v is REQUIRED else v for k, v in opts.items()},
                "required": [] if opts is None else [k for k, v in opts.items() if v is REQUIRED]}

    def lines(self) -> list[str]:
        """What ``hwnas plugins --options NAME`` prints."""
        head = f"{self.kind} {self.name} ({self.target}), set with {HOW_SET.get(self.kind, 'its options')}:"
        if self.options is None:
            return [head, "  any KEY=VALUE (it takes **kwargs: no list to show)"]
        if not self.options:
            return [head, "  no options"]
        width = max(len(k) for k in self.options)
        return [head, *(f"  {k:{width}s}  " + ("(required)" if v is REQUIRED else f"default {v!r}")
                        for k, v in self.options.items())]


def plugin_options(name: str, kind: str | None = None) -> list[PluginOptions]:
    """The options of every plugin named ``name`` (of ``kind``, or of any kind but spaces, whose "options" are a
    file's fields); an unknown name is an InputError listing the names there are."""
    from hwnas.core.errors import InputError

    regs = [r for r in registries(kind) if kind is not None or r.kind != "space"]
    found = [PluginOptions(r.kind, name, r.where(name)[1], r.options(name)) for r in regs if name in r]
    if not found:
        known = "; ".join(f"{r.kind}: {', '.join(r.names())}" for r in regs)
        raise InputError(f"no {kind or 'plugin'} named {name!r}; there are {known} (hwnas plugins lists them)")
    return found
