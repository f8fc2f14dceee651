"""The import graph of src/gecko points one way (docs/architecture.md): cli → pipeline → stages → infer →
model → base. Every `import` counts, function-local ones included, since a local import is still a
dependency (it only hides it). A module may import its own unit and the units of lower layers; stage
packages do not import each other; no two modules import each other, directly or around a loop.

Also: the data stage's own layers (DATA_LAYERS), one writer helper (gecko.io.atomic), one module naming shard
files (gecko.shards), and no module over MAX_LINES lines without a stated reason.

An edge that breaks the rule and is not fixed yet is listed in KNOWN with the reason; the list must shrink,
never silently grow, and an entry that no longer matches an import fails the test (so it cannot go stale).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[tuple[str, set[str]]] = [
    # name, units (a unit is a top-level module or package of gecko); lower layers first
    ("base", {"gecko.errors"}),
    ("base", {"gecko.config", "gecko.io", "gecko.progress", "gecko.runlock"}),
    ("base", {"gecko.tracking", "gecko.terminal"}),  # they use config / progress
    ("formats", {"gecko.tokens", "gecko.shards"}),
    ("model", {"gecko.model"}),
    ("infer", {"gecko.infer"}),
    ("stages", {"gecko.data", "gecko.tokenizer", "gecko.train", "gecko.eval", "gecko.export"}),
    ("composite", {"gecko.sft"}),  # a stage made of two: the trainer on conversations, then an HF export
    ("pipeline", {"gecko.stages"}),  # the stage table
    ("pipeline", {"gecko.runner"}),  # plans and runs it
    ("tools", {"gecko.ablate", "gecko.importer"}),  # they drive the stage table
    ("cli", {"gecko.cli"}),
    ("entry", {"gecko.__main__", "gecko"}),
]
RANK = {unit: rank for rank, (_, units) in enumerate(LAYERS) for unit in units}

KNOWN: dict[tuple[str, str], str] = {
    # (importing module, imported module): why it is still there, and the fix
}
"""Back-arrows not fixed yet, each with its reason."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / "gecko").rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported gecko module, line) for every import in the file, at any depth; `from a import b` counts as
    `a.b` where that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import gecko.data.io.readers.x` → the module that exists
                target = target.rpartition(".")[0]
            if target.startswith("gecko") and target != name:
                found.append((target, node.lineno))
    return found


@cache
def graph() -> dict[str, dict[str, int]]:
    mods = modules()
    edges: dict[str, dict[str, int]] = defaultdict(dict)
    for name, path in mods.items():
        for target, line in imports(name, path, set(mods)):
            edges[name].setdefault(target, line)
    return edges


def unit(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_every_unit_has_a_layer():
    missing = sorted({unit(m) for m in modules()} - set(RANK))
    assert missing == [], f"new top-level module or package: give it a layer in LAYERS ({__file__})"


def test_imports_point_down_the_layers():
    bad = []
    for src, targets in graph().items():
        if unit(src) not in RANK:
            continue  # reported by test_every_unit_has_a_layer
        for dst, line in targets.items():
            if (
                unit(src) != unit(dst)
                and RANK.get(unit(dst), -1) >= RANK[unit(src)]
                and (src, dst) not in KNOWN
            ):
                kind = "sibling stage" if RANK[unit(dst)] == RANK[unit(src)] else "upward"
                bad.append(f"{src}:{line} imports {dst} ({kind})")
    assert bad == [], "\n".join(bad)


def test_known_exceptions_are_still_real():
    edges = graph()
    stale = [f"{a} -> {b}" for a, b in KNOWN if b not in edges.get(a, {})]
    assert stale == [], "fixed: remove from KNOWN: " + ", ".join(stale)


def test_no_import_cycles():
    """Modules, not just packages: a cycle inside a package hides the same confusion. Edges in KNOWN are left
    out here too (each is already reported as an exception)."""
    edges = {
        a: {b: line for b, line in targets.items() if (a, b) not in KNOWN} for a, targets in graph().items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(modules()):
        if v not in index:
            visit(v)
    assert cycles == []


DATA_LAYERS: list[set[str]] = [
    # inside the data stage (gecko/data/__init__.py), lower first; a unit is gecko.data.X, or
    # gecko.data.steps.X for a step
    {"gecko.data.stats", "gecko.data.corpus"},
    {"gecko.data.engine"},  # datatrove and Ray glue: executor, step bases (they fill the stats ledger)
    {"gecko.data.text"},
    {"gecko.data.steps.langid"},  # language detection: the readers label what a record leaves unlabeled
    {"gecko.data.io"},
    {"gecko.data.phase"},
    {
        f"gecko.data.steps.{step}"
        for step in ("normalize", "quality", "pii", "toxicity", "dedup", "decontam", "align", "mix")
    },
    {"gecko.data.pipeline", "gecko.data.commands", "gecko.data.heldout"},
]
DATA_RANK = {unit: rank for rank, units in enumerate(DATA_LAYERS) for unit in units}


def data_unit(module: str) -> str | None:
    """The unit of a module inside gecko.data (None for a package `__init__` that only holds a docstring)."""
    parts = module.split(".")
    depth = 4 if parts[:3] == ["gecko", "data", "steps"] else 3
    return ".".join(parts[:depth]) if len(parts) >= depth else None


def test_data_modules_import_down_their_layers():
    """Steps do not import each other (one module per step), and nothing low in the data stage reaches up
    into phases, steps or the pipeline."""
    data = {m for m in modules() if m.startswith("gecko.data.")}
    units = {data_unit(m) for m in data} - {None}
    assert units <= set(DATA_RANK), f"give these a place in DATA_LAYERS: {sorted(units - set(DATA_RANK))}"
    bad = []
    for src in sorted(data):
        for dst, line in graph().get(src, {}).items():
            a, b = data_unit(src), data_unit(dst) if dst.startswith("gecko.data.") else None
            if a and b and a != b and DATA_RANK[b] >= DATA_RANK[a]:
                bad.append(f"{src}:{line} imports {dst}")
    assert bad == [], "\n".join(bad)


WRITERS_OF_THEIR_OWN: dict[str, str] = {
    # module: why it writes files itself instead of through gecko.io.atomic
    "gecko.io.atomic": "the helper itself",
    "gecko.model.hf": "writes into a temporary folder that is renamed into place whole",
    "gecko.train.metrics": "appends one JSON line per step (a cut last line is dropped by the reader)",
    "gecko.tracking": "appends one event line at a time, as metrics does",
    "gecko.data.engine.executor": "appends a worker's stderr log",
    "gecko.data.steps.decontam": "the cached index: a per-process temporary name (two runs may build it at once)",
    "gecko.data.io.readers": "the quarantine log streams for a whole read, then is renamed into place",
    "gecko.data.steps.mix.ranks": "appends zstd frames to its scratch buckets (mix.work/), cleared on a rerun, removed once sorted",
    "gecko.data.steps.mix.run": "sizes the corpus's temporary file, which the sorting ranks fill by position; renamed into place",
    "gecko.tokenizer.pretokenize": "shards stream to .tmp files through copy_file_range, then are renamed",
    "gecko.eval.sandbox": "the sandbox's scratch folder and /proc files, not outputs",
    "gecko.eval.sandbox_cgroup": "cgroup control files cannot be created and renamed",
    "gecko.eval.sandbox_seccomp": "an in-memory file (memfd) for the seccomp filter",
}


def _writes(path: Path) -> list[int]:
    """Lines that write a file: Path.write_text/write_bytes, or open()/Path.open()/os.fdopen() with a mode
    that writes."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if isinstance(func, ast.Attribute) and name in ("write_text", "write_bytes"):
            lines.append(node.lineno)
        elif name in ("open", "fdopen"):
            modes = [
                a.value
                for a in [*node.args, *(k.value for k in node.keywords if k.arg == "mode")]
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ]
            if any(set(m) & set("wax+") and set(m) <= set("rwabx+t") for m in modes):
                lines.append(node.lineno)
    return lines


def test_files_are_written_through_gecko_atomic():
    """One way to leave a file for another stage: gecko.io.atomic (temporary name, fsync, rename, UTF-8)."""
    bad = [
        f"{name}:{line}"
        for name, path in modules().items()
        if name not in WRITERS_OF_THEIR_OWN
        for line in _writes(path)
    ]
    assert bad == [], (
        "write through gecko.io.atomic (or add the module to WRITERS_OF_THEIR_OWN with why): "
        + ", ".join(bad)
    )
    unused = [name for name in WRITERS_OF_THEIR_OWN if not _writes(modules()[name])]
    assert unused == [], f"no longer writes by itself: remove from WRITERS_OF_THEIR_OWN: {unused}"


SHARD_FILE_ENDINGS = (".bin", ".bin.tmp", ".idx.npy", ".mask.npy")


def test_only_gecko_shards_names_shard_files():
    """The shard files are named in one place (gecko.shards.shard_file): a module spelling `{split}.bin` or an
    `.idx.npy` / `.mask.npy` path itself is a second writer or reader of the format."""
    bad = []
    for name, path in modules().items():
        if name == "gecko.shards":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            literal = (
                node.values[-1].value
                if isinstance(node, ast.JoinedStr)
                and node.values
                and isinstance(node.values[-1], ast.Constant)
                else node.value
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 40
                else None
            )
            if (
                isinstance(literal, str)
                and literal.endswith(SHARD_FILE_ENDINGS[2:])
                or (isinstance(node, ast.JoinedStr) and str(literal).endswith(SHARD_FILE_ENDINGS))
            ):
                bad.append(f"{name}:{node.lineno}")
    assert bad == [], "name shard files through gecko.shards.shard_file: " + ", ".join(sorted(set(bad)))


MAX_LINES = 500
"""A module longer than this states why in its docstring, on a paragraph starting `Size:`."""


def _states_its_size(path: Path) -> bool:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return any(line.startswith("Size: ") for line in doc.splitlines())


def test_long_modules_state_why():
    """No module over MAX_LINES lines without a stated reason (issue 16); a stated reason on a module that
    has shrunk below the limit is stale and fails too, so the reasons stay true."""
    lengths = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()}
    unstated = [
        f"{n} ({lengths[n]} lines)"
        for n, p in modules().items()
        if lengths[n] > MAX_LINES and not _states_its_size(p)
    ]
    stale = [
        f"{n} ({lengths[n]} lines)"
        for n, p in modules().items()
        if lengths[n] <= MAX_LINES and _states_its_size(p)
    ]
    assert unstated == [], "split at a natural seam, or give the reason in a `Size:` paragraph: " + ", ".join(
        unstated
    )
    assert stale == [], "no longer over the limit: drop the `Size:` paragraph: " + ", ".join(stale)


def _owners_table() -> set[Path]:
    """Paths (relative to src/) named in the first column of docs/architecture.md's "Who owns what" table: the
    first item is a path, later bare names are files beside it (or inside it, for a folder)."""
    doc = SRC.parent / "docs" / "architecture.md"
    named = set()
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `gecko/"):
            first, *beside = re.findall(r"`([^`]+)`", line.split("|")[1])
            named.add(Path(first))
            named.update((Path(first) if first.endswith("/") else Path(first).parent) / b for b in beside)
    return named


def test_architecture_doc_matches_the_tree():
    """Each module has an owner row in docs/architecture.md, and each row names files that exist."""
    named = _owners_table()
    gone = sorted(str(p) for p in named if not (SRC / p).exists())
    assert gone == [], f"docs/architecture.md names files that do not exist: {gone}"
    folders = [p for p in named if (SRC / p).is_dir()]
    unnamed = sorted(
        str(rel)
        for path in (SRC / "gecko").rglob("*.py")
        if path.name != "__init__.py"  # a package's docstring says what it owns
        for rel in [path.relative_to(SRC)]
        if rel not in named and not any(rel.is_relative_to(f) for f in folders)
    )
    assert unnamed == [], f"give these a row in docs/architecture.md's 'Who owns what': {unnamed}"


def test_test_modules_do_not_import_each_other():
    """Shared test code lives in conftest.py (fixtures) and helpers.py; a test module imported by another
    runs its tests' module-level code twice and ties unrelated files together."""
    tests = Path(__file__).parent
    bad = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            bad += [
                f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0].startswith("test_")
            ]
    assert bad == []


def test_the_checker_sees_function_local_and_relative_imports(tmp_path):
    """The parser is what the rules stand on: a local `from gecko.x import y` and `from . import z` count."""
    path = tmp_path / "gecko" / "a" / "b.py"
    path.parent.mkdir(parents=True)
    path.write_text("def f():\n    from gecko.c import d\n    from . import e\n", encoding="utf-8")
    known = {"gecko.c", "gecko.c.d", "gecko.a", "gecko.a.e"}
    assert imports("gecko.a.b", path, known) == [("gecko.c.d", 2), ("gecko.a.e", 3)]
