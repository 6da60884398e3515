"""The arena file: which training config, which shared budget, which seeds and which estimator
entries (docs/arena.md). `load_spec` reads and checks it and builds every run's training config up
front, so that a mistake anywhere is reported, one line per mistake, before anything trains."""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ARENA_KEYS = ("name", "base", "overrides", "seeds", "out", "entries", "curve", "spike_factor")
DEFAULT_SEEDS = (0, 1, 2)
_LABEL = re.compile(r"^[A-Za-z0-9_-]+$")


class ArenaError(ValueError):
    """Mistakes in an arena file or the `mas arena` command line, one line each."""

    def __init__(self, lines: list[str] | str):
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))


@dataclass
class Entry:
    label: str
    estimator: str
    overrides: dict[str, Any]  # dotted key -> value, the entry's own, leaves only


@dataclass
class RunPlan:
    label: str
    seed: int
    run_dir: Path
    overrides: list[str]  # `key=value` strings for `mas train BASE ...`, run.seed and run.dir last
    config: Any = None  # the resolved mas.config.Config


@dataclass
class ArenaSpec:
    path: str
    name: str
    base: str
    overrides: dict[str, Any]
    seeds: list[int]
    out: Path
    entries: dict[str, Entry]
    curve: str | None = None  # history key of the learning curve; None: detected per run
    spike_factor: float = 3.0
    runs: list[RunPlan] = field(default_factory=list)  # every (entry, seed), seed by seed

    def run_dir(self, label: str, seed: int) -> Path:
        return self.out / label / f"seed-{seed}"


# --- dotted keys ------------------------------------------------------------------------------

def expand(mapping: dict) -> dict:
    """{"training.loss.agg": x, "training": {"iterations": 3}} -> nested dicts, deep-merged."""
    out: dict = {}
    for key, value in mapping.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        leaf = parts[-1]
        if isinstance(value, dict):
            value = expand(value)
            if isinstance(node.get(leaf), dict):
                value = _merge(node[leaf], value)
        node[leaf] = value
    return out


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {dotted leaf key: value}; lists and scalars are leaves, so is an empty dict.
    `mas train` applies overrides with merge, so setting every leaf equals setting the whole dict."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def override_strings(mapping: dict[str, Any]) -> list[str]:
    """Dotted leaves -> `key=value` strings that mas.validation.load_config reads back (JSON is YAML)."""
    return [f"{key}={json.dumps(value)}" for key, value in mapping.items()]


# --- loading ----------------------------------------------------------------------------------

def _read(path: str) -> dict:
    if not Path(path).is_file():
        raise ArenaError(f"arena file '{path}' not found")
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ArenaError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict) or set(raw) != {"arena"} or not isinstance(raw["arena"], dict):
        extra = sorted(set(raw) - {"arena"}) if isinstance(raw, dict) else []
        hint = f" (unknown top-level key '{extra[0]}')" if extra else ""
        raise ArenaError(f"{path}: the file must hold one mapping, 'arena:'{hint}")
    arena = dict(raw["arena"])
    for key in ("overrides",):
        if isinstance(arena.get(key), dict):
            arena[key] = expand(arena[key])
    if isinstance(arena.get("entries"), dict):
        arena["entries"] = {k: expand(v) if isinstance(v, dict) else v for k, v in arena["entries"].items()}
    return arena


def _apply_cli(arena: dict, overrides: list[str], path: str) -> dict:
    """`key=value` overrides of the arena section (an `arena.` prefix is optional)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        node = OmegaConf.create(arena)
    except (OmegaConfBaseException, ValueError) as err:
        raise ArenaError(f"{path}: {str(err).splitlines()[0]}") from None
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ArenaError(f"command line: override '{item}' must look like key=value")
        key = key.removeprefix("arena.")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            raise ArenaError(f"command line: {key}: cannot read the value '{text}'") from None
        if isinstance(value, dict):
            value = expand(value)
        try:
            OmegaConf.update(node, key, value, merge=True)
        except (OmegaConfBaseException, ValueError, TypeError) as err:
            raise ArenaError(f"command line: {key}: {str(err).splitlines()[0]}") from None
    try:
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as err:
        raise ArenaError(f"{path}: {str(err).splitlines()[0]}") from None


def _resolve_base(base: str, path: str) -> str | None:
    for candidate in (Path(base), Path(path).parent / base):
        if candidate.is_file():
            return str(candidate)
    return None


def load_spec(path: str, overrides: list[str] | None = None) -> ArenaSpec:
    """Read, check and plan an arena; every mistake found is one line of the ArenaError."""
    from mas.training.advantages import available_estimators

    arena = _apply_cli(_read(path), overrides or [], path)
    errors: list[str] = []
    where = f"{path}: arena"
    for key in arena:
        if key not in ARENA_KEYS:
            hint = difflib.get_close_matches(str(key), ARENA_KEYS, n=1)
            errors.append(f"{where}.{key}: unknown key{f' (did you mean {hint[0]!r}?)' if hint else ''}; "
                          f"allowed: {', '.join(ARENA_KEYS)}")
    name = arena.get("name", Path(path).stem)
    if not isinstance(name, str) or not _LABEL.match(name):
        errors.append(f"{where}.name: letters, digits, '_' and '-' only, got {name!r}")
    base = arena.get("base")
    base_file = _resolve_base(base, path) if isinstance(base, str) else None
    if base is None:
        errors.append(f"{where}.base: a training config is required, e.g. configs/quickstart.yaml")
    elif base_file is None:
        errors.append(f"{where}.base: config file '{base}' not found")
    shared = arena.get("overrides") or {}
    if not isinstance(shared, dict):
        errors.append(f"{where}.overrides: a mapping of dotted keys to values, e.g. {{training.iterations: 20}}")
        shared = {}
    seeds = arena.get("seeds", list(DEFAULT_SEEDS))
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        errors.append(f"{where}.seeds: a list of whole numbers (run.seed of each run), e.g. [0, 1, 2]; got {seeds!r}")
        seeds = []
    elif len(seeds) < 1:
        errors.append(f"{where}.seeds: at least 1 seed is needed (3 or more for useful intervals)")
    elif len(set(seeds)) != len(seeds):
        errors.append(f"{where}.seeds: each seed once, got {seeds}")
    curve = arena.get("curve")
    if curve is not None and not isinstance(curve, str):
        errors.append(f"{where}.curve: a history key such as eval/random/non_loss, got {curve!r}")
    spike_factor = arena.get("spike_factor", 3.0)
    if isinstance(spike_factor, bool) or not isinstance(spike_factor, (int, float)) or spike_factor <= 1:
        errors.append(f"{where}.spike_factor: a number above 1, got {spike_factor!r}")
        spike_factor = 3.0
    raw_entries = arena.get("entries")
    entries: dict[str, Entry] = {}
    if not isinstance(raw_entries, dict) or not raw_entries:
        errors.append(f"{where}.entries: no entries; give at least one, label -> overrides, e.g. {{grpo: {{}}}}")
        raw_entries = {}
    registered = available_estimators()
    for label, extra in raw_entries.items():
        at = f"{where}.entries.{label}"
        if not isinstance(label, str) or not _LABEL.match(label):
            errors.append(f"{at}: a label uses letters, digits, '_' and '-' only (it names a folder)")
            continue
        if extra is None:
            extra = {}
        if not isinstance(extra, dict):
            errors.append(f"{at}: a mapping of dotted overrides (or {{}}), got {extra!r}")
            continue
        flat = flatten(extra)
        estimator = flat.get("training.estimator", label)
        if estimator not in registered:
            why = "" if "training.estimator" in flat else " (the label; set training.estimator to choose another)"
            errors.append(f"{at}: estimator '{estimator}' is not registered{why}; registered: {', '.join(registered)}")
            continue
        entries[label] = Entry(label, estimator, flat)
    out = Path(arena.get("out") or Path("runs") / "arena" / str(name))
    spec = ArenaSpec(path=path, name=str(name), base=base_file, overrides=flatten(shared), seeds=list(seeds),
                     out=out.absolute(), entries=entries, curve=curve, spike_factor=float(spike_factor))
    if base_file is not None:  # the entries that passed so far: build their configs too
        spec.runs, config_errors = plan_runs(spec)
        errors += config_errors
    if errors:
        raise ArenaError(errors)
    return spec


def run_overrides(spec: ArenaSpec, entry: Entry, seed: int) -> list[str]:
    """base < shared overrides < the entry's estimator (its label by default) < the entry's
    overrides < this run's seed and folder."""
    mapping = {**spec.overrides, "training.estimator": entry.estimator, **entry.overrides,
               "run.seed": seed, "run.dir": str(spec.run_dir(entry.label, seed))}
    return override_strings(mapping)


def plan_runs(spec: ArenaSpec) -> tuple[list[RunPlan], list[str]]:
    """Every (entry, seed) run with its config built now, so that a bad override is an error before
    any training; returns the runs and the mistakes: the shared overrides' once, else one line per
    faulty entry. Runs go seed by seed (every entry's seed 0 first), so a partial arena already
    compares every entry."""
    from mas.config import ConfigError
    from mas.validation import load_config

    def explain(err: ConfigError, where: str) -> str:
        message = str(err)
        for source in ("command line: ", f"{spec.base}: "):
            message = message.removeprefix(source)
        return f"{spec.path}: {where}: {message}"

    try:
        load_config(spec.base, override_strings(spec.overrides))
    except ConfigError as err:
        return [], [explain(err, "arena.overrides")]
    errors: dict[str, str] = {}  # one line per faulty entry
    runs = []
    for seed in spec.seeds or DEFAULT_SEEDS[:1]:  # no seeds is an error already; still check the entries
        for entry in spec.entries.values():
            overrides = run_overrides(spec, entry, seed)
            try:
                cfg = load_config(spec.base, overrides)
            except ConfigError as err:
                errors.setdefault(entry.label, explain(err, f"arena.entries.{entry.label}"))
                continue
            runs.append(RunPlan(entry.label, seed, spec.run_dir(entry.label, seed), overrides, cfg))
    return runs, list(errors.values())
