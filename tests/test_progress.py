"""Progress lines: plain text off a terminal, datatrove's tables kept out of the terminal, the final summary."""

from __future__ import annotations

import gzip
import io
import random
from collections import Counter

from gecko.data.engine.executor import execute, shard_writer
from gecko.data.engine.progress import utf8_len
from gecko.data.phase import input_size, reader
from gecko.data.stats import DataStats
from gecko.data.steps.dedup.planted import write_shards
from gecko.io import sources
from gecko.progress import Progress
from helpers import WORDS


def test_plain_lines_give_rates_eta_and_a_final_line():
    out = io.StringIO()
    with Progress("decontam", total_bytes=4_000_000, every_s=0.0, stream=out) as p:
        p.update(docs=10, nbytes=1_000_000)
        p.update(docs=10, nbytes=1_000_000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert (
        lines[0].startswith("decontam: 10 docs, 1.0/4.0 MB,") and "docs/s" in lines[0] and "ETA" in lines[0]
    )
    assert lines[-1].startswith("decontam: 20 docs, 2.0/4.0 MB,") and "done in" in lines[-1]


def test_plain_lines_are_rate_limited():
    out = io.StringIO()
    with Progress("clean", every_s=3600, stream=out) as p:
        for _ in range(1000):
            p.update(docs=1, nbytes=100)
    assert out.getvalue().count("\n") == 1  # only the final line


def test_executor_shows_one_line_and_keeps_datatrove_tables_in_the_log(tmp_path, capfd):
    docs = [
        {"id": str(i), "text": f"document number {i} " * 20, "lang": "en", "source": "s"} for i in range(50)
    ]
    write_shards(docs, tmp_path / "in", 2)
    execute([reader(tmp_path / "in")], 2, 2, tmp_path / "logs", label="read test", total_bytes=1000)
    err = capfd.readouterr().err
    assert "read test: 50 docs" in err and "done in" in err
    assert "Stats" not in err and "PIPELINE" not in err
    assert "Stats" in (tmp_path / "logs" / "datatrove.log").read_text()


def test_summary_has_a_row_per_reason_and_a_column_per_language():
    stats = DataStats(
        read=Counter({"wiki": 7}),
        dropped=Counter({("quality", "too_short", "ko"): 2, ("langid", "other_language", "other"): 1}),
        kept=Counter({"ko": 3, "en": 1}),
        kept_bytes=Counter({"ko": 30, "en": 10}),
    )
    lines = stats.summary().splitlines()
    assert lines[0].split() == ["en", "ko", "other", "total"]
    assert lines[-1].split() == ["kept", "1", "3", "0", "4"]
    assert ["quality", "too_short", "0", "2", "0", "2"] in [line.split() for line in lines]


def test_a_phase_total_is_its_input_decompressed_as_the_lines_count_text(tmp_path):
    """The lines count text read; a phase reading zstd shards ~3.5x smaller than that text must not show
    '3.9/1.3 MB' and lose its ETA after a third of the work (seen on the demo before)."""
    rng = random.Random(0)
    docs = [
        {"id": str(i), "text": " ".join(rng.choice(WORDS) for _ in range(300)), "lang": "en", "source": "s"}
        for i in range(300)
    ]
    write_shards(docs, tmp_path / "plain", 2)
    for name, text_bytes in (("zst", False), ("recorded", True)):
        for _ in shard_writer(tmp_path / name, text_bytes=text_bytes).run(reader(tmp_path / "plain").run()):
            pass
    plain = sum(f.stat().st_size for f in (tmp_path / "plain").iterdir())
    zst = next((tmp_path / "zst").glob("*.zst"))
    assert zst.stat().st_size < plain / 2  # compressed well, so the unit matters
    assert input_size(tmp_path / "plain") == plain  # plain files: their size
    assert 0.97 < input_size(tmp_path / "zst") / plain < 1.03  # zstd: estimated from its first MB
    text = sum(len(d["text"].encode()) for d in docs)  # a phase's output: its writer's record, exact
    assert input_size(tmp_path / "recorded") == text and reader(tmp_path / "recorded").files == [
        str(tmp_path / "recorded" / "00000.jsonl.zst")
    ]
    gz = tmp_path / "gz" / "a.jsonl.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress((tmp_path / "plain" / "00000.jsonl").read_bytes()))
    assert input_size(gz.parent) == (tmp_path / "plain" / "00000.jsonl").stat().st_size


def test_a_code_trees_total_counts_the_files_read(tmp_path):
    """A code source reads its extensions only; site-packages/transformers counted 1.35 GB (binaries, data)
    for 0.2 GB of .py, so the clean line's ETA said minutes after it was done."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n" * 100)
    (tmp_path / "pkg" / "lib.so").write_bytes(b"\0" * 100_000)
    assert sources.total_bytes(str(tmp_path / "pkg"), suffixes=(".py",)) == 600
    assert sources.total_bytes(str(tmp_path / "pkg")) == 100_600  # a path of another format: all it names


def test_utf8_len_counts_bytes_as_encoding_does():
    for text in ("", "ascii only", "한국어 text", "lone \ud800 surrogate", "emoji 😀", "é"):
        assert utf8_len(text) == len(text.encode("utf-8", "surrogatepass"))
