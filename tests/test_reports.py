"""The reports a person reads: the data report's HTML is well formed, its examples sit under their own
language, and the training plot has no empty panel."""

from __future__ import annotations

import re
import warnings
from html.parser import HTMLParser

from gecko.data.pipeline import run_data
from gecko.data.stats import DataStats
from gecko.train.metrics import loss_figure
from helpers import raw_sources_config

VOID = {"meta", "br", "img", "hr", "input", "link"}


class StrictHTML(HTMLParser):
    """Every element closed in order, and every table row as wide as its table's header row."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.widths: list[list[int]] = []  # per open table: cells of each row

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in VOID:
            return
        self.stack.append(tag)
        if tag == "table":
            self.widths.append([])
        elif tag == "tr":
            self.widths[-1].append(0)
        elif tag in ("td", "th"):
            self.widths[-1][-1] += 1

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(
                f"line {self.getpos()[0]}: </{tag}> closes <{self.stack[-1] if self.stack else ''}>"
            )
            return
        self.stack.pop()
        if tag == "table":
            rows = self.widths.pop()
            if len(set(rows)) > 1:
                self.errors.append(f"line {self.getpos()[0]}: table rows of {rows} cells")


def check_html(text: str) -> None:
    parser = StrictHTML()
    parser.feed(text)
    parser.close()
    assert text.lstrip().lower().startswith("<!doctype html>")
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack)


def _stats() -> DataStats:
    stats = DataStats()
    stats.read["web"] = 5
    stats.kept["ko"], stats.kept_bytes["ko"] = 1, 1000
    stats.drop("quality", "too_short", "ko", "k1: 짧다")
    stats.drop("quality", "too_short", "en", "e1: short")
    stats.drop("quality", "too_short", "en", "e2: tiny")
    stats.drop("toxicity", "toxic", "ko", "k2: <b>욕설</b>")
    return stats


def test_strict_html_check_catches_a_missing_cell():
    broken = "<!doctype html><table><tr><th>a</th><th>b</th></tr><tr><td>1</td>2</td></tr></table>"
    parser = StrictHTML()
    parser.feed(broken)
    assert parser.errors  # the bug once in stats.py's kept table


def test_data_report_html_is_well_formed():
    check_html(_stats().report_html({"ko": 0.5, "en": 0.5}))
    check_html(_stats().report_html({}))


def test_report_examples_sit_under_their_own_language():
    stats = _stats()
    md = {
        line.split(" | ")[2]: line for line in stats.report({}).splitlines() if line.startswith("| quality |")
    }
    assert "k1: 짧다" in md["ko"] and "e1" not in md["ko"]
    assert "e1: short" in md["en"] and "e2: tiny" in md["en"] and "k1" not in md["en"]
    html = stats.report_html({})
    row = re.search(r"<td>too_short</td>.*?</tr>", html, re.S).group(0)
    assert "en: <code>e1: short</code>" in row and "ko: <code>k1: 짧다</code>" in row


def test_data_stage_reports_are_well_formed_with_per_language_examples(raw_sources, tmp_path):
    stats = run_data(raw_sources_config(raw_sources), tmp_path / "out", seed=1)
    check_html((tmp_path / "out" / "report.html").read_text(encoding="utf-8"))
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    dedup = [line for line in md.splitlines() if line.startswith("| exact_dedup | duplicate |")]
    assert dedup and all(" | ko | " in line for line in dedup)  # the planted copies are all Korean
    ids = {
        lang: {e.split(" = ")[0] for e in shown}
        for key, shown in stats.examples.items()
        for lang in [key.rsplit("/", 1)[1]]
        if key.startswith("exact_dedup/")
    }
    assert ids and set(ids) == {"ko"}


def _no_warnings(records: list[dict]):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = loss_figure(records)
    assert not caught, [str(w.message) for w in caught]
    return fig.axes


def test_loss_plot_has_no_empty_panel():
    train = [{"step": s, "loss": 3.0 - s / 10} for s in (1, 2, 3)]
    sft = _no_warnings(
        [
            *train,
            {"step": 0, "val_loss": {"ko": 2.5, "en": 2.7}},
            {"step": 3, "val_loss": {"ko": 2.0, "en": 2.2}},
        ]
    )
    assert [ax.get_title() for ax in sft] == ["Training loss", "Validation loss (SFT)"]
    assert all(ax.lines for ax in sft) and len(sft[1].lines) == 2
    pretrain = _no_warnings([*train, {"step": 3, "val_bpb": {"ko": 1.5, "en": 1.2, "code": 0.9}}])
    assert pretrain[1].get_title() == "Validation bits per byte" and len(pretrain[1].lines) == 3
    only_train = _no_warnings(train)
    assert len(only_train) == 1 and only_train[0].lines
