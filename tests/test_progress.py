"""Progress lines: plain text off a terminal, datatrove's tables kept out of the terminal, the final summary."""

from __future__ import annotations

import io
from collections import Counter

from gecko.data.engine.executor import execute
from gecko.data.phase import reader
from gecko.data.stats import DataStats
from gecko.data.steps.dedup.planted import write_shards
from gecko.progress import Progress


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
