"""Readers × faults × modes: every reader meets every real fault with either kept documents, a counted
quarantine record naming file and line (RUN/data/quarantine/*.jsonl, OUT.quarantine.jsonl), or one clear
error line — never a traceback, never silent loss. Each cell checks read = kept + dropped + quarantined.

Files are generated small in tmp_path; the 100 MB line is a 5 KB line against a lowered cap, plus one
real-size case marked slow. The modes: the reader step of the pipeline, the per-step commands (`gecko data
pii --in …`), the corpus commands (`gecko data dedup`), and the whole `gecko data run`.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gecko.config import SourceConfig
from gecko.data.io.readers import SourceReader
from gecko.data.stats import DataStats
from gecko.io.jsonl import json_records

zstd = pytest.importorskip("zstandard")
pq = pytest.importorskip("pyarrow.parquet")

CAP = 2000
"""The lowered line/document cap: a 5 KB line stands for the 100 MB one."""
TEXTS = [
    "대한민국은 동아시아의 한반도에 위치한 민주공화국이다. 수도는 서울특별시이다.",
    "Git is a free and open source distributed version control system designed for speed.",
    "한글은 세종대왕이 1443년에 창제한 문자로, 스물네 개의 기본 자모로 이루어져 있다.",
]
COMPRESS = {
    "": lambda b: b,
    ".gz": gzip.compress,
    ".zst": lambda b: zstd.ZstdCompressor().compress(b),
    ".bz2": lambda b: bz2.compress(b, 1),
    ".xz": lzma.compress,
}  # bz2 -1: 100 KB blocks
READERS = {  # name → (source format, file suffix incl. compression); every codec is met by a non-JSONL reader too
    "jsonl": ("jsonl", ".jsonl"),
    "jsonl.gz": ("jsonl", ".jsonl.gz"),
    "jsonl.zst": ("jsonl", ".jsonl.zst"),
    "jsonl.bz2": ("jsonl", ".jsonl.bz2"),
    "jsonl.xz": ("jsonl", ".jsonl.xz"),
    "json": ("json", ".json"),
    "json.xz": ("json", ".json.xz"),
    "csv": ("csv", ".csv"),
    "csv.zst": ("csv", ".csv.zst"),
    "tsv": ("tsv", ".tsv"),
    "tsv.gz": ("tsv", ".tsv.gz"),
    "text": ("text", ".txt"),
    "text.bz2": ("text", ".txt.bz2"),
    "parquet": ("parquet", ".parquet"),
    "code": ("code", ".py"),
}
FAULTS = (
    "bom",
    "crlf",
    "invalid_utf8",
    "cp949",
    "nul",
    "truncated",
    "long_line",
    "empty",
    "missing_field",
    "non_object",
    "duplicate_ids",
    "unreadable",
)


@dataclass
class Expect:
    kept: int
    dropped: dict[str, int] = field(default_factory=dict)
    """quarantine reason → records"""
    repaired: dict[str, int] = field(default_factory=dict)


@dataclass
class Case:
    path: Path
    fmt: str
    expect: Expect
    unreadable: bool = False


# ---- writing each format, good records plus raw injected lines ------------------------------------------


def _records(ids: list[str] | None = None) -> list[dict]:
    return [{"id": i, "text": t} for i, t in zip(ids or ["a", "b", "c"], TEXTS)]


def _table_bytes(rows: list, sep: str, eol: str) -> bytes:
    lines = [f"id{sep}text".encode()]
    for r in rows:
        text = (
            f'"{r["text"]}"'
            if not isinstance(r, bytes) and sep in r["text"]
            else r
            if isinstance(r, bytes)
            else r["text"]
        )
        lines.append(r if isinstance(r, bytes) else f"{r['id']}{sep}{text}".encode())
    return b"".join(line + eol.encode() for line in lines)


def _serialize(fmt: str, rows: list, eol: str = "\n") -> bytes:
    """rows: dicts (records) or bytes (a raw line/block, for faults the serializer cannot express)."""
    if fmt == "jsonl":
        return b"".join(
            (r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode()) + eol.encode()
            for r in rows
        )
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=1).replace("\n", eol).encode()
    if fmt in ("csv", "tsv"):
        return _table_bytes(rows, "," if fmt == "csv" else "\t", eol)
    if fmt == "text":
        return (eol * 2).encode().join(
            r if isinstance(r, bytes) else r["text"].encode() for r in rows
        ) + eol.encode()
    raise AssertionError(fmt)


def _write(tmp: Path, reader: str, rows: list, eol: str = "\n", prefix: bytes = b"") -> Path:
    fmt, suffix = READERS[reader]
    if fmt == "parquet":
        import pyarrow as pa

        path = tmp / "in.parquet"
        pq.write_table(pa.table({"id": [r["id"] for r in rows], "text": [r.get("text") for r in rows]}), path)
        return path
    if fmt == "code":
        root = tmp / "repo"
        root.mkdir()
        for r in rows:
            data = (
                r
                if isinstance(r, bytes)
                else (f"# {r['id']}{eol}def f():{eol}    return {r['text']!r}{eol}").encode()
            )
            (root / f"m{len(list(root.iterdir()))}.py").write_bytes(data)
        return root
    path = tmp / f"in{suffix}"
    codec = next((c for c in COMPRESS if c and suffix.endswith(c)), "")
    path.write_bytes(COMPRESS[codec](prefix + _serialize(fmt, rows, eol)))
    return path


def build(tmp: Path, reader: str, fault: str) -> Case | None:
    """The file(s) for one cell and what must come out of them; None where the fault cannot occur."""
    fmt, suffix = READERS[reader]
    compressed = any(suffix.endswith(c) for c in COMPRESS if c)
    good = _records()
    n = len(good)
    if fault == "bom":
        if fmt == "parquet":
            return None
        path = _write(tmp, reader, good, prefix=b"\xef\xbb\xbf")
        if fmt == "code":
            (path / "m0.py").write_bytes(b"\xef\xbb\xbf" + (path / "m0.py").read_bytes())
        return Case(path, fmt, Expect(n))
    if fault == "crlf":
        return None if fmt == "parquet" else Case(_write(tmp, reader, good, eol="\r\n"), fmt, Expect(n))
    if fault in ("invalid_utf8", "cp949"):
        bad = (
            TEXTS[0][:10].encode() + b"\xff" + TEXTS[0][10:].encode()
            if fault == "invalid_utf8"
            else TEXTS[0].encode("cp949")
        )
        quarantined = fault == "cp949"
        if fmt == "parquet":
            return None  # parquet strings are validated UTF-8 by the writer
        if fmt in ("json",):  # one document per file: the whole file decodes or not
            path = _write(tmp, reader, good)
            raw = path.read_bytes()
            data = (
                COMPRESS[".xz"](_serialize(fmt, good).replace(TEXTS[0].encode(), bad))
                if compressed
                else raw.replace(TEXTS[0].encode(), bad)
            )
            path.write_bytes(data)
            return Case(path, fmt, Expect(0, {"invalid_utf8": 1}) if quarantined else Expect(n))
        row = {
            "jsonl": b'{"id": "x", "text": "' + bad + b'"}',
            "csv": b"x," + bad,
            "tsv": b"x\t" + bad,
            "text": bad,
            "code": bad,
        }[fmt]
        path = _write(tmp, reader, [*good, row])
        return Case(
            path,
            fmt,
            Expect(n, {"invalid_utf8": 1}) if quarantined else Expect(n + 1, repaired={"invalid_utf8": 1}),
        )
    if fault == "nul":
        if fmt == "parquet":
            return None
        if fmt == "code":  # a NUL in a source file means a binary file
            return Case(
                _write(tmp, reader, [*good, b"\x00\x01\x02binary"]), fmt, Expect(n, {"binary_file": 1})
            )
        if fmt == "json":
            return Case(_write(tmp, reader, [*good, {"id": "z", "text": "가\x00나"}]), fmt, Expect(n + 1))
        row = {
            "jsonl": '{"id": "z", "text": "가\x00나"}'.encode(),
            "csv": "z,가\x00나".encode(),
            "tsv": "z\t가\x00나".encode(),
            "text": "가\x00나".encode(),
        }[fmt]
        return Case(_write(tmp, reader, [*good, row]), fmt, Expect(n + 1))
    if fault == "truncated":
        if fmt == "code":
            return None  # a cut source file is still a source file
        if fmt == "parquet":
            path = _write(tmp, reader, good)
            path.write_bytes(path.read_bytes()[:-20])
            return Case(path, fmt, Expect(0, {"unreadable_file": 1}))
        # enough for several bz2 blocks (100 KB at -1), each record unlike the others (dedup stays cheap)
        many = [
            {"id": f"r{i}", "text": f"{TEXTS[i % 3]} {hashlib.sha512(str(i).encode()).hexdigest() * 2}"}
            for i in range(700)
        ]
        path = _write(tmp, reader, many)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3] if compressed else data[: len(data) - 7])
        return Case(
            path,
            fmt,
            Expect(
                -1,
                {
                    "truncated_file"
                    if compressed
                    else {
                        "jsonl": "malformed_json",
                        "json": "malformed_json",
                        "csv": "",
                        "tsv": "",
                        "text": "",
                    }[fmt]: 1
                },
            ),
        )
    if fault == "long_line":
        long_text = "가" * (CAP * 4)  # 24 KB: over the cap of every mode
        if fmt == "code":
            return Case(
                _write(tmp, reader, [*good, f"x = '{long_text}'\n".encode()]),
                fmt,
                Expect(n, {"too_large": 1}),
            )
        return Case(
            _write(tmp, reader, [*good, {"id": "big", "text": long_text}]), fmt, Expect(n, {"too_large": 1})
        )
    if fault == "empty":
        if fmt == "parquet":
            return Case(_write(tmp, reader, []), fmt, Expect(0, {"empty_file": 1}))
        if fmt == "code":
            return Case(_write(tmp, reader, [*good, b""]), fmt, Expect(n, {"empty_file": 1}))
        path = tmp / f"in{suffix}"
        path.write_bytes(
            b"" if not compressed else COMPRESS[next(c for c in COMPRESS if c and suffix.endswith(c))](b"")
        )
        return Case(path, fmt, Expect(0, {"empty_file": 1}))
    if fault == "missing_field":
        if fmt in ("text", "code"):
            return None  # no fields
        if fmt == "parquet":
            return Case(
                _write(tmp, reader, [*good, {"id": "m", "text": None}]),
                fmt,
                Expect(n, {"missing_field_text": 1}),
            )
        if fmt in ("csv", "tsv"):  # the column is missing from the header: the file is quarantined, named
            path = _write(tmp, reader, good)
            raw = _serialize(fmt, good).replace(b"text", b"body", 1)
            path.write_bytes(COMPRESS[next((c for c in COMPRESS if c and suffix.endswith(c)), "")](raw))
            return Case(path, fmt, Expect(0, {"missing_field_text": 1}))
        return Case(
            _write(tmp, reader, [*good, {"id": "m", "body": "x"}, {"id": "w", "text": 7}]),
            fmt,
            Expect(n, {"missing_field_text": 2}),
        )
    if fault == "non_object":
        if fmt == "jsonl":
            return Case(
                _write(tmp, reader, [*good, b"[1, 2]", b'"just a string"']),
                fmt,
                Expect(n, {"not_an_object": 2}),
            )
        if fmt == "json":
            return Case(_write(tmp, reader, [*good, [1, 2], "s"]), fmt, Expect(n, {"not_an_object": 2}))
        return None
    if fault == "duplicate_ids":
        if fmt in ("text", "code"):
            return None  # ids are file:line or paths, unique by construction
        dup = [*good, {"id": "a", "text": TEXTS[1] + " 다른 문서"}]
        return Case(_write(tmp, reader, dup), fmt, Expect(n + 1, repaired={"duplicate_id": 1}))
    if fault == "unreadable":
        path = _write(tmp, reader, good)
        target = path / "m1.py" if fmt == "code" else path
        return Case(
            target if fmt != "code" else path,
            fmt,
            Expect(n - 1 if fmt == "code" else 0, {"unreadable_file": 1}),
            unreadable=True,
        )
    raise AssertionError(fault)


def _make_unreadable(cases: list[Case], monkeypatch) -> None:
    """chmod 000, or, as root (who reads anything), the same PermissionError from open."""
    import os

    targets = {c.path / "m1.py" if c.fmt == "code" else c.path for c in cases}
    for target in targets:
        target.chmod(0)
    if os.geteuid() != 0:
        return
    real_open = Path.open

    def deny(self, *a, **kw):  # every reader, parquet included, opens its files through Path.open (rawio)
        if Path(self) in targets:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *a, **kw)

    monkeypatch.setattr(Path, "open", deny)


CELLS = [(r, f) for r in READERS for f in FAULTS]


# ---- mode 1: the pipeline's reader step ------------------------------------------------------------------


def _check_quarantine(qdir: Path, stats: DataStats, case: Case) -> None:
    rows = [json.loads(line) for p in sorted(qdir.glob("*.jsonl")) for line in p.open(encoding="utf-8")]
    dropped = Counter({r: n for (_, r, _), n in stats.dropped.items()})
    assert Counter(r["reason"] for r in rows) == dropped
    name = case.path.name
    assert all(name in r["where"] or case.fmt == "code" for r in rows), rows


@pytest.mark.parametrize("reader,fault", CELLS, ids=[f"{r}-{f}" for r, f in CELLS])
def test_reader_step(tmp_path, monkeypatch, reader, fault):
    case = build(tmp_path, reader, fault)
    if case is None:
        pytest.skip(f"{fault} cannot occur in {reader}")
    if case.unreadable:
        _make_unreadable([case], monkeypatch)
    src = SourceConfig("s", str(case.path), "ko", format=case.fmt, extensions=(".py",))
    ledger, qdir = tmp_path / "ledger", tmp_path / "quarantine"
    docs = list(SourceReader((src,), CAP, str(ledger), str(qdir)).run())
    stats = DataStats.load_ledgers(ledger)
    quarantined = sum(stats.dropped.values())
    assert sum(stats.read.values()) == len(docs) + quarantined  # accounting
    expect = case.expect
    want = {r: n for r, n in expect.dropped.items() if r}
    got = {r: n for (_, r, _), n in stats.dropped.items()}
    if expect.kept >= 0:
        assert len(docs) == expect.kept
        assert got == want
    else:  # a truncated stream: whatever came before the break is kept, the break is one record
        assert len(docs) > 100 and sum(got.values()) <= 1 and set(got) <= set(want)
        if "truncated_file" in want:
            (row,) = [json.loads(x) for p in qdir.glob("*.jsonl") for x in p.open()]
            assert "truncated at byte" in row["detail"] and row["where"].startswith(f"{case.path}:")
            last_kept = docs[-1].metadata["where"].rsplit(":", 1)[1]
            if last_kept.isdigit():  # a line number (JSON arrays name items)
                assert int(row["where"].rsplit(":", 1)[1]) > int(last_kept)
    assert {k.split("/", 1)[1]: v for k, v in stats.repaired.items()} == expect.repaired
    assert all("\ufeff" not in d.text and ("\r" not in d.text or case.fmt == "code") for d in docs)
    _check_quarantine(qdir, stats, case)


# ---- mode 2: a per-step command on the file (`gecko data pii --in F --out O`) ----------------------------


def _one_line_error(err: str, case: Case) -> None:
    lines = [line for line in err.splitlines() if line.startswith("gecko: error:")]
    assert len(lines) == 1 and str(case.path) in lines[0], err


def _fatal_for_one_file(case: Case, fault: str) -> bool:
    """Faults that make a single input file unusable as a whole: a clear error, not an empty output."""
    return (fault == "unreadable" and case.fmt != "code") or (
        fault == "missing_field" and case.fmt in ("csv", "tsv")
    )


@pytest.mark.parametrize("reader,fault", CELLS, ids=[f"{r}-{f}" for r, f in CELLS])
def test_step_command(tmp_path, monkeypatch, capsys, reader, fault):
    from gecko.cli import main

    case = build(tmp_path, reader, fault)
    if case is None:
        pytest.skip(f"{fault} cannot occur in {reader}")
    if case.unreadable:
        _make_unreadable([case], monkeypatch)
    out = tmp_path / "out.jsonl"
    code = main(
        [
            "data",
            "pii",
            "--in",
            str(case.path),
            "--out",
            str(out),
            "--config",
            str(_config_with_cap(tmp_path)),
        ]
    )
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    if _fatal_for_one_file(case, fault):
        assert code == 2 and not out.exists()
        _one_line_error(captured.err, case)
        return
    assert code == 0, captured.err
    counts = json.loads(captured.out.strip().splitlines()[-1])
    quarantined = {
        k.removeprefix("quarantined_"): n for k, n in counts.items() if k.startswith("quarantined_")
    }
    written = [json.loads(x) for x in out.open(encoding="utf-8")]
    assert (
        counts["read"]
        == counts["written"] + sum(quarantined.values())
        == len(written) + sum(quarantined.values())
    )
    qfile = tmp_path / "out.quarantine.jsonl"
    rows = [json.loads(x) for x in qfile.open(encoding="utf-8")] if qfile.exists() else []
    assert Counter(r["reason"] for r in rows) == Counter(quarantined)
    want = {r: n for r, n in case.expect.dropped.items() if r}
    if case.expect.kept >= 0:
        assert len(written) == case.expect.kept and quarantined == want
    else:
        assert len(written) > 100 and sum(quarantined.values()) <= 1 and set(quarantined) <= set(want)
    repaired = {k.removeprefix("repaired_"): n for k, n in counts.items() if k.startswith("repaired_")}
    if counts.get("duplicate_id"):
        repaired["duplicate_id"] = counts["duplicate_id"]
    assert repaired == case.expect.repaired
    warned = [line for line in captured.err.splitlines() if line.startswith("gecko: warning:")]
    assert len(warned) == len(quarantined) + len(repaired)  # one line per kind of fault, naming the file
    assert all(case.path.name in line or case.fmt == "code" for line in warned)


def _config_with_cap(tmp: Path) -> Path:
    path = tmp / "cap.yaml"
    path.write_text(f"data:\n  clean:\n    max_doc_bytes: {CAP}\n", encoding="utf-8")
    return path


# ---- mode 3: the whole `gecko data run`, every cell one source of a single run --------------------------


def _cell_name(reader: str, fault: str) -> str:
    return f"{reader}-{fault}".replace(".", "_")


@pytest.fixture(scope="module")
def data_run(tmp_path_factory):
    """One `gecko data run` over a source per cell (cells whose fault stops a run have their own test)."""
    from gecko.cli import main

    root = tmp_path_factory.mktemp("data_run")
    cases = {}
    for reader, fault in CELLS:
        folder = root / _cell_name(reader, fault)
        folder.mkdir()
        case = build(folder, reader, fault)
        if case is not None and not (fault == "missing_field" and case.fmt in ("csv", "tsv")):
            cases[_cell_name(reader, fault)] = case
    langs = {name: "code" if c.fmt == "code" else "ko" for name, c in cases.items()}
    sources = "".join(
        f"    - {{name: {name}, path: '{c.path}', lang: {langs[name]}, "
        f"format: {c.fmt}, extensions: ['.py']}}\n"
        for name, c in cases.items()
    )
    sample = Path(__file__).resolve().parents[1] / "data" / "sample"  # clean text, so the mix has ko and code
    sources += (
        f"    - {{name: good_ko, path: '{sample / 'ko' / 'kowiki.jsonl'}', lang: ko, max_docs: 50}}\n"
        f"    - {{name: good_code, path: '{sample / 'code' / 'python.tar.gz'}', lang: code, format: code, max_docs: 20}}\n"
    )
    config = root / "run.yaml"
    config.write_text(
        f"run_dir: {root / 'run'}\ndata:\n  sources:\n{sources}  mix: {{ko: 0.7, code: 0.3}}\n"
        f"  clean:\n    max_doc_bytes: {CAP * 5}\n    dump_dropped: true\n    keep_other: true\n",
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as mp:
        _make_unreadable([c for c in cases.values() if c.unreadable], mp)
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        data_dir = root / "run" / "data"
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["data", "clean", str(config)])
            # the clean phase's per-source documents, read before `data run` consumes the folder
            clean = [r for p in (data_dir / "clean").glob("*.jsonl*") for _, r in json_records(p)]
            dumped = [r for p in (data_dir / "dropped").rglob("*.jsonl*") for _, r in json_records(p)]
            code = code or main(["data", "run", str(config)])
    return cases, data_dir, code, out.getvalue() + err.getvalue(), clean, dumped


@pytest.mark.slow
@pytest.mark.parametrize("reader,fault", CELLS, ids=[f"{r}-{f}" for r, f in CELLS])
def test_data_run(data_run, reader, fault):
    cases, data_dir, code, output, clean, dumped = data_run
    name = _cell_name(reader, fault)
    if name not in cases:
        pytest.skip(
            f"{fault} cannot occur in {reader}, or stops the run (see test_data_run_stops_on_bad_header)"
        )
    assert code == 0 and "Traceback" not in output, output[-3000:]
    case = cases[name]
    stats = json.loads((data_dir / "stats.json").read_text())
    assert (
        stats["read_total"]
        == sum(stats["kept"].values()) - sum(stats["repeated"].values()) + stats["dropped_total"]
    )
    quarantine = [json.loads(x) for p in (data_dir / "quarantine").glob("*.jsonl") for x in p.open()]
    mine = Counter(r["reason"] for r in quarantine if r["source"] == name)
    kept = sum(d["metadata"]["source"] == name for d in clean)
    dropped = sum(d["metadata"]["source"] == name for d in dumped)
    assert stats["read"][name] == kept + dropped + sum(mine.values())  # this source's own accounting
    want = {r: n for r, n in case.expect.dropped.items() if r}
    if case.expect.kept >= 0:
        assert kept + dropped == case.expect.kept and mine == want
    else:
        assert kept + dropped > 100 and sum(mine.values()) <= 1 and set(mine) <= set(want)


@pytest.mark.parametrize("reader", ["csv", "tsv.gz"])
def test_data_run_stops_on_bad_header(tmp_path, capsys, reader):
    """A text column missing from a table's header is a config error: one line naming file and line 1."""
    from gecko.cli import main

    case = build(tmp_path, reader, "missing_field")
    config = tmp_path / "run.yaml"
    config.write_text(
        f"run_dir: {tmp_path / 'run'}\ndata:\n  sources:\n    - {{name: t, path: '{case.path}', "
        f"lang: ko, format: {case.fmt}}}\n  mix: {{ko: 1.0}}\n",
        encoding="utf-8",
    )
    assert main(["data", "run", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    _one_line_error(err, case)
    assert f"{case.path}:1: no column 'text'" in err
