"""`gecko <stage> CONFIG [key=value …]` runs one stage; `gecko run CONFIG` chains them all.

Handlers are thin: parse, load the config, call the library. GeckoErrors print as one line, no traceback.

Size: over 500 lines because it is the whole command surface, every subcommand's arguments and help in one
parser, so `gecko --help` and this file read alike; no handler holds pipeline logic (each calls one library
function) and the stage commands are generated from the stage table (gecko.stages).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from gecko.config import GeckoConfig, load_config, to_dict
from gecko.errors import DIST, GeckoError
from gecko.runlock import run_lock
from gecko.runner import CONFIG_COPY, record_made_by, run_all, run_stage, status_lines
from gecko.stages import BY_NAME, SFT, STAGES, Stage
from gecko.terminal import NORMAL, QUIET, VERBOSE, setup_output

DEMO = "configs/demo.yaml"

DATA_STEP_HELP = {
    "normalize": "NFC, control characters, prose whitespace (code byte-exact) on a JSONL file",
    "langid": "add lang (ko/en/code/other), lid_label and lid_score to each record of a JSONL file",
    "quality": "keep the records that pass the per-language quality rules",
    "pii": "replace PII by typed placeholders (<PHONE>, <RRN>, …) and add pii counts",
    "toxicity": "add a toxicity probability to each record",
}


def _data_step(args: argparse.Namespace) -> None:
    from gecko.data.commands import run_step

    data = load_config(args.config).data if args.config else load_config().data
    result = run_step(args.action, Path(args.in_path), Path(args.out_path), args.text_field, data, args.lang)
    print(json.dumps(dict(result.counts), ensure_ascii=False))
    for line in result.warnings():
        print(f"gecko: warning: {line}", file=sys.stderr)


CORPUS_STEP_HELP = {
    "dedup": "exact, MinHash near-duplicate and boilerplate dedup of a folder of JSONL files; writes "
    "OUT.work/duplicates.jsonl (which document duplicates which)",
    "decontam": "drop (or flag) documents sharing a 13-unit n-gram with data.decontam.benchmarks; "
    "writes OUT.work/report.md",
    "mix": "mix datatrove JSONL folders to the target token shares into a GECKO corpus.jsonl",
    "align": "ko↔en alignment documents from data.align.sources (--in is not used)",
}


def _corpus_step(args: argparse.Namespace) -> None:
    """`gecko data dedup|decontam|mix|align --in … --out …`: one library call each."""
    cfg = load_config(args.config, args.overrides) if args.config else load_config(None, args.overrides)
    data, out, ins = cfg.data, Path(args.out_path), [Path(p) for p in args.in_path or []]
    workers = args.workers or data.workers
    if args.action in ("dedup", "decontam", "mix") and not ins:
        raise GeckoError(f"gecko data {args.action}: --in is required")
    if args.action == "dedup":
        from gecko.data.engine.executor import engine_of
        from gecko.data.steps.dedup.run import run_dedup

        r = run_dedup(ins[0], out, data.dedup, workers, engine_of(data), lang=args.lang)
        print(
            json.dumps(
                {
                    "kept": r.kept,
                    "dropped": {"/".join(k): n for k, n in r.dropped.items()},
                    "duplicates": str(r.work_dir / "duplicates.jsonl"),
                },
                ensure_ascii=False,
            )
        )
    elif args.action == "decontam":
        from gecko.data.engine.executor import engine_of
        from gecko.data.steps.decontam import run_decontam

        r = run_decontam(ins[0], out, data.decontam, workers, engine_of(data))
        print((r.work_dir / "report.md").read_text(encoding="utf-8"))
    elif args.action == "mix":
        from gecko.data.stats import DataStats
        from gecko.data.steps.mix.run import run_mix

        run_mix(ins, out, dataclasses.replace(data, workers=workers), cfg.seed, DataStats())
        print((out.parent / "mix_report.md").read_text(encoding="utf-8"))
    else:
        from gecko.data.steps.align import run_align

        print(json.dumps(run_align(data.align, out, cfg.seed).to_dict(), ensure_ascii=False))


def _add_lang_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lang",
        default="auto",
        choices=("auto", "field", "ko", "en", "code", "other"),
        help="each record's language: auto = from its text (default; `code` records stay code), "
        "field = its `lang` field where valid, else from the text; or one label for all",
    )


def _add_config_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
    p.add_argument(
        "config",
        nargs="?" if optional else None,
        help="YAML config, e.g. configs/demo.yaml" + (" (optional with --model)" if optional else ""),
    )
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="override a config key, e.g. train.steps=50"
    )
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tasks", help="comma-separated, e.g. bpb,kmmlu,mmlu,gsm8k,humaneval,mbpp (sets eval.tasks)"
    )
    p.add_argument("--limit", type=int, help="items per task, per subject for KMMLU/MMLU (sets eval.limit)")
    p.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="run model code even where the kernel sandbox is unavailable (sets eval.unsafe_no_sandbox)",
    )
    p.add_argument(
        "--task",
        action="append",
        metavar="TASK.yaml",
        help="a local multiple-choice task file, repeatable (sets eval.task_files; without --tasks, "
        "only these run); format in docs/evaluation.md",
    )


def _eval_overrides(args: argparse.Namespace) -> list[str]:
    """`--tasks`/`--limit` are shorthands for config overrides, so they enter the stage's fingerprint."""
    out = []
    if getattr(args, "tasks", None):
        out.append(f"eval.tasks=[{args.tasks}]")
    if getattr(args, "limit", None) is not None:
        out.append(f"eval.limit={args.limit}")
    if getattr(args, "unsafe_no_sandbox", False):
        out.append("eval.unsafe_no_sandbox=true")
    if getattr(args, "task", None):
        out.append(f"eval.task_files={json.dumps([str(Path(t).resolve()) for t in args.task])}")
        if not getattr(args, "tasks", None):
            out += ["eval.tasks=[]", "eval.suite=none"]
    return out


def _add_generate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stream", action="store_true", help="print tokens as they are sampled (sets generate.stream)"
    )
    p.add_argument("--prompts-file", metavar="FILE", help="one prompt per line (sets generate.prompts_file)")
    p.add_argument(
        "--prompt", action="append", metavar="TEXT", help="a prompt, repeatable (sets generate.prompts)"
    )
    p.add_argument(
        "--model",
        metavar="DIR",
        help="sample from this Hugging Face folder instead of RUN/export/hf; no config needed (the "
        "generate section's defaults), and no run folder is touched",
    )
    p.add_argument("--out", metavar="DIR", help="with --model: also write DIR/samples.jsonl")


def _generate_overrides(args: argparse.Namespace) -> list[str]:
    """`--stream`/`--prompts-file`/`--prompt` are shorthands for config overrides, like the eval flags."""
    out = ["generate.stream=true"] if getattr(args, "stream", False) else []
    if getattr(args, "prompts_file", None):
        out.append(f"generate.prompts_file={json.dumps(args.prompts_file)}")
    if getattr(args, "prompt", None):
        out.append(f"generate.prompts={json.dumps(args.prompt, ensure_ascii=False)}")
    return out


def _add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gguf",
        nargs="?",
        const="f32",
        choices=("f32", "f16", "bf16", "q8_0"),
        help="also write RUN/export/model-TYPE.gguf through llama.cpp's converter (sets export.gguf)",
    )


def _export_overrides(args: argparse.Namespace) -> list[str]:
    """`--gguf` is a shorthand for export.gguf, so it enters the stage's fingerprint."""
    return [f"export.gguf={args.gguf}"] if getattr(args, "gguf", None) else []


def _generate_from_folder(cfg: GeckoConfig, args: argparse.Namespace) -> None:
    """`gecko generate --model DIR`: the generate stage's sampling on any exported folder, outside any run."""
    from gecko.infer.generate import run_generate

    run_generate(cfg.generate, _model_dir(args.model), Path(args.out) if args.out else None)


def _model_dir(path: str) -> Path:
    """A folder `gecko export` (or `gecko sft`) wrote: config.json, tokenizer.json and safetensors weights."""
    folder = Path(path)
    if not folder.is_dir():
        raise GeckoError(
            f"--model {path}: not a folder (give an exported model folder, e.g. runs/demo/export/hf)"
        )
    missing = [f for f in ("config.json", "tokenizer.json") if not (folder / f).is_file()]
    if missing:
        raise GeckoError(
            f"--model {path}: no {missing[0]} (not a Hugging Face model folder written by "
            "`gecko export` or `gecko sft`)"
        )
    return folder


def _chat(cfg: GeckoConfig, args: argparse.Namespace) -> None:
    from gecko.infer.chat import run_chat
    from gecko.infer.generate import Sampling
    from gecko.stages import stage_dir

    g = cfg.generate
    sampling = Sampling.of(g)
    model_dir = _model_dir(args.model) if args.model else stage_dir(cfg, "sft") / "hf"
    run_chat(
        model_dir,
        g.max_new_tokens,
        sampling,
        g.seed,
        args.system if args.system is not None else cfg.sft.system,
    )


def _compare(cfg: GeckoConfig, args: argparse.Namespace) -> None:
    from gecko.data.heldout import read_texts
    from gecko.stages import stage_dir
    from gecko.tokenizer.compare import REPORT_MD, compare

    tokenizer_dir = stage_dir(cfg, "tokenizer")
    out = Path(args.out) if args.out else tokenizer_dir / "compare"
    compare(cfg.compare, tokenizer_dir, out, read_texts)
    print((out / REPORT_MD).read_text(encoding="utf-8"))


class _Parser(argparse.ArgumentParser):
    """Every gecko parser: no abbreviated flags (`--prompt` must not silently mean `--prompts-file`),
    subcommands whose `key=value` overrides may come before, between or after flags, and usage errors on one
    line like every other error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _IntermixedSubParsers)

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command(
    sub: argparse._SubParsersAction, name: str, what: str, reads: str, writes: str, example: str
) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does, what it reads and writes, and how to call it."""
    return sub.add_parser(
        name,
        help=what,
        description=f"{what}.\n\nreads:  {reads}\nwrites: {writes}",
        epilog=f"example:\n  {example}",
    )


def _group(sub: argparse._SubParsersAction, name: str, what: str) -> argparse._SubParsersAction:
    """`gecko data …`, `gecko tokenizer …`, `gecko sandbox …`: a family of subcommands."""
    return sub.add_parser(
        name, help=what, description=f"{what}; `gecko {name} COMMAND --help` for each command"
    ).add_subparsers(dest="action", required=True)


class _IntermixedSubParsers(argparse._SubParsersAction):
    """Parses a leaf subcommand with `parse_known_intermixed_args` (argparse refuses it on a parser that has
    subcommands, so the top level and `gecko data`/`gecko tokenizer` keep the ordinary parse)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values[0])
        chosen = self._name_parser_map.get(values[0])
        if chosen is None or chosen._subparsers is not None:
            return super().__call__(parser, namespace, values, option_string)
        sub, extras = chosen.parse_known_intermixed_args(values[1:], None)
        for key, value in vars(sub).items():
            setattr(namespace, key, value)
        if extras:
            vars(namespace).setdefault(argparse._UNRECOGNIZED_ARGS_ATTR, []).extend(extras)


def _add_extend_parser(tok: argparse._SubParsersAction) -> None:
    ext = _command(
        tok,
        "extend",
        "add Korean (and code) tokens to an existing BPE tokenizer, ids kept",
        "BASE and RUN/data/corpus.jsonl",
        "RUN/tokenizer/ (or --out): tokenizer.json and a report",
        f"gecko tokenizer extend base/tokenizer.json {DEMO} --add 4000",
    )
    ext.add_argument(
        "base",
        help="base tokenizer: tokenizer.json, a folder holding one, a SentencePiece .model or a .gguf model",
    )
    _add_config_args(ext)
    ext.add_argument("--add", type=int, required=True, help="new tokens to add (0: the base as is)")
    ext.add_argument("--langs", default="ko", help="corpus languages the merges learn from (default: ko)")
    ext.add_argument("--out", help="output folder (default: RUN/tokenizer)")
    ext.add_argument("--force", action="store_true", help="replace a tokenizer already in the output folder")


def _extend(cfg: GeckoConfig, args: argparse.Namespace) -> None:
    from gecko.data.heldout import read_texts
    from gecko.stages import stage_dir
    from gecko.tokenizer.extend import run_extend

    langs = tuple(x.strip() for x in args.langs.split(",") if x.strip())
    out = Path(args.out) if args.out else stage_dir(cfg, "tokenizer")
    corpus = stage_dir(cfg, "data") / "corpus.jsonl"
    report = run_extend(cfg, Path(args.base), corpus, args.add, langs, out, read_texts, args.force)
    if out == stage_dir(cfg, "tokenizer"):  # the run's tokenizer now: `gecko run` must not train one over it
        summary = {"base": args.base, "added": args.add, "langs": list(langs)}
        record_made_by(cfg, BY_NAME["tokenizer"], "gecko tokenizer extend", summary)
    print(report.read_text(encoding="utf-8"))


def _report(cfg: GeckoConfig, args: argparse.Namespace) -> None:
    from gecko.data.heldout import read_texts
    from gecko.stages import stage_dir
    from gecko.tokenizer.report import CARD_MD, report

    tokenizer_dir = stage_dir(cfg, "tokenizer")
    out = Path(args.out) if args.out else tokenizer_dir / "report"
    report(cfg.compare, tokenizer_dir, out, read_texts)
    print((out / CARD_MD).read_text(encoding="utf-8"))


FORCE_HELP = "redo stale stages even where that deletes their checkpoints or hours of work"


STAGE_READS = {
    "data": "the files named in data.sources (and data.align / data.decontam)",
    "sft": "RUN/export/hf/ (or sft.init_from) and the conversations in sft.sources",
}
"""What a stage reads where its upstream stages' folders do not say it all."""


def _stage_doc(stage: Stage) -> tuple[str, str, str]:
    """reads, writes and an example for a stage's --help, from the stage table."""
    reads = STAGE_READS.get(stage.name) or ", ".join(f"RUN/{BY_NAME[u].folder}/" for u in stage.upstream)
    config = "configs/sft-demo.yaml" if stage is SFT else DEMO
    return (
        reads,
        f"RUN/{stage.folder}/ (RUN: the config's run_dir)",
        f"gecko {' '.join(stage.command)} {config}",
    )


def _add_stage_commands(
    sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]
) -> None:
    """One subcommand per entry of the stage table: `gecko train`, `gecko data run`, `gecko sft`, …"""
    extra_args = {"eval": _add_eval_args, "generate": _add_generate_args, "export": _add_export_args}
    for stage in (*STAGES, SFT):
        *group, name = stage.command
        p = _command(groups[group[0]] if group else sub, name, stage.help, *_stage_doc(stage))
        p.set_defaults(stage=stage.name)
        _add_config_args(p, optional=stage.name == "generate")
        p.add_argument("--force", action="store_true", help=FORCE_HELP)
        if stage.name in extra_args:
            extra_args[stage.name](p)


def _status(args: argparse.Namespace) -> int:
    """`gecko status RUN|CONFIG`: reads only, so it needs no lock and runs beside a training run."""
    target = Path(args.target)
    config = target / CONFIG_COPY if target.is_dir() else target
    if target.is_dir() and not config.is_file():
        raise GeckoError(
            f"{target}: no {CONFIG_COPY} (not a gecko run folder, or no command has written it yet)"
        )
    cfg = load_config(config, args.overrides)
    print("\n".join(status_lines(cfg)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gecko",
        description="Build bilingual Korean·English LLMs that code.",
        epilog=f"example:\n  gecko run {DEMO}\n`gecko COMMAND --help` says what each command reads "
        "and writes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", action="store_true", help="debug log lines too")
    loud.add_argument(
        "-q", "--quiet", action="store_true", help="warnings and errors only: no progress lines"
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        metavar="SECONDS",
        help="off a terminal (CI, nohup, Slurm), one progress line per this many seconds "
        "(default: 10; $GECKO_PROGRESS_EVERY)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = _command(
        sub,
        "run",
        "run every stage of `gecko status` in order, skipping those up to date",
        "the config's data sources",
        "RUN/{data,tokenizer,shards,train,eval,export,generate}/",
        f"gecko run {DEMO} train.steps=50",
    )
    _add_config_args(run)
    run.add_argument("--force", action="store_true", help=FORCE_HELP)
    status = _command(
        sub,
        "status",
        "each stage's state; stale stages with the field-by-field diff",
        "RUN/config.yaml and the stages' markers (never writes, needs no lock)",
        "nothing (prints)",
        "gecko status runs/demo train.steps=600",
    )
    status.add_argument(
        "target",
        metavar="RUN|CONFIG",
        help="a run folder (compared with RUN/config.yaml, its last config) or a YAML config",
    )
    status.add_argument(
        "overrides", nargs="*", metavar="key=value", help="e.g. train.steps=600: what would change"
    )
    groups = {
        "data": _group(sub, "data", "corpus commands"),
        "tokenizer": _group(sub, "tokenizer", "tokenizer commands"),
    }
    _add_stage_commands(sub, groups)
    imp = _command(
        sub,
        "import",
        "make an open model step 0 of RUN/train (continued pretraining)",
        "MODEL: a Hugging Face LLaMA folder (config.json, safetensors, tokenizer.json) or a .gguf file",
        "RUN/train/ and RUN/tokenizer/",
        f"gecko import ~/models/llama-1b {DEMO}",
    )
    imp.add_argument(
        "source",
        metavar="MODEL",
        help="folder with config.json, safetensors weights and tokenizer.json, or a LLaMA .gguf file",
    )
    _add_config_args(imp)
    chat = _command(
        sub,
        "chat",
        "chat in the terminal with a model (sampling: the generate section)",
        "RUN/sft/hf/, or the folder given with --model (no config needed then)",
        "nothing (replies stream to the terminal)",
        "gecko chat --model runs/demo/sft/hf",
    )
    _add_config_args(chat, optional=True)
    chat.add_argument("--model", metavar="DIR", help="Hugging Face folder (default: RUN/sft/hf)")
    chat.add_argument("--system", help="system message (default: sft.system)")
    _add_data_commands(groups["data"])
    _add_tokenizer_commands(groups["tokenizer"])
    _add_sandbox_parser(sub)
    ablate = _command(
        sub,
        "ablate",
        "a grid of small runs varying config keys; table and plot per variant",
        "CONFIG and its data sources",
        "RUN/ablate/: one run folder per variant, a table and a plot",
        f"gecko ablate {DEMO} --vary train.lr=1e-3,3e-3 --vary model.preset=tiny",
    )
    _add_config_args(ablate)
    ablate.add_argument(
        "--vary",
        action="append",
        required=True,
        metavar="KEY=V1,V2,…",
        help="values of one config key (repeatable: the grid is every combination)",
    )
    ablate.add_argument(
        "--stages",
        default="data,tokenizer,tokenize,train,eval",
        help="stages to run per variant (default: data,tokenizer,tokenize,train,eval)",
    )
    ablate.add_argument(
        "--share-tokenizer",
        action="store_true",
        help="every variant uses the first variant's tokenizer, even when the data vary",
    )
    ablate.add_argument("--force", action="store_true", help="rerun stages even if complete")
    return parser


def _add_data_commands(data: argparse._SubParsersAction) -> None:
    """`gecko data clean` and the single steps, each on files named on the command line."""
    _add_config_args(
        _command(
            data,
            "clean",
            "only the clean phase of the data stage",
            "data.sources",
            "RUN/data/clean/ and RUN/data/clean_report.md",
            f"gecko data clean {DEMO}",
        )
    )
    for step, text in DATA_STEP_HELP.items():
        p = _command(
            data,
            step,
            text,
            "IN (--in)",
            "OUT.jsonl (--out); counts as JSON on stdout",
            f"gecko data {step} --in data/sample/ko/kowiki.jsonl --out /tmp/{step}.jsonl",
        )
        p.add_argument(
            "--in",
            dest="in_path",
            required=True,
            metavar="IN",
            help="JSONL, JSON, CSV, TSV, Parquet or text file (also .gz/.zst/.bz2/.xz), or a code folder",
        )
        p.add_argument("--out", dest="out_path", required=True, metavar="OUT.jsonl")
        p.add_argument("--text-field", default="text", help="field holding the text (default: text)")
        p.add_argument(
            "--config", help="YAML config whose data section sets the thresholds (default: defaults)"
        )
        _add_lang_arg(p)
    for step, text in CORPUS_STEP_HELP.items():
        p = _command(
            data,
            step,
            text,
            "folders of JSONL files (--in)" if step != "align" else "data.align.sources",
            "PATH (--out): a folder, or the corpus.jsonl file for mix",
            f"gecko data {step} --in runs/demo/data/clean --out /tmp/{step}"
            if step != "align"
            else f"gecko data align --config {DEMO} --out /tmp/align",
        )
        p.add_argument(
            "--in", dest="in_path", nargs="+", metavar="DIR", help="input folder(s) of JSONL files"
        )
        p.add_argument(
            "--out",
            dest="out_path",
            required=True,
            metavar="PATH",
            help="output folder (corpus.jsonl file for mix)",
        )
        p.add_argument("--config", help="YAML config whose data section is used (default: defaults)")
        p.add_argument("--workers", type=int, help="parallel workers (default: data.workers)")
        if step == "dedup":
            _add_lang_arg(p)
        p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. data.dedup.threshold=0.7")


def _add_tokenizer_commands(tok: argparse._SubParsersAction) -> None:
    """`gecko tokenizer compare|extend|report` (`train` comes from the stage table)."""
    cmp = _command(
        tok,
        "compare",
        "chars/bytes per token on held-out text: ours vs reference tokenizers",
        "RUN/tokenizer/ and the compare section's texts",
        "RUN/tokenizer/compare/ (or --out): report.md",
        f"gecko tokenizer compare {DEMO}",
    )
    _add_config_args(cmp)
    cmp.add_argument("--out", help="report folder (default: RUN/tokenizer/compare)")
    _add_extend_parser(tok)
    card = _command(
        tok,
        "report",
        "report card on held-out text: efficiency, byte fallback, unused vocab, "
        "round trip, digits, longest tokens; ours vs references",
        "RUN/tokenizer/ and the compare section's texts",
        "RUN/tokenizer/report/ (or --out)",
        f"gecko tokenizer report {DEMO}",
    )
    _add_config_args(card)
    card.add_argument("--out", help="report folder (default: RUN/tokenizer/report)")


def _ablate(cfg: GeckoConfig, args: argparse.Namespace) -> None:
    from gecko.ablate import parse_vary, run_ablation, summarize, variants

    grid = parse_vary(args.vary)
    grid_variants = variants(args.config, grid, args.overrides)
    run_ablation(
        grid_variants,
        grid,
        tuple(s.strip() for s in args.stages.split(",")),
        args.share_tokenizer,
        args.force,
    )
    print(summarize(grid_variants, cfg.run_path / "ablate"))


# ── gecko sandbox: the code-evaluation sandbox on its own ─────────────────────────────────────────────


def _add_sandbox_parser(sub: argparse._SubParsersAction) -> None:
    box = _group(sub, "sandbox", "the code-evaluation sandbox")
    _command(
        box,
        "check",
        "which isolation layers this host gives (exit 1 if a required one is missing)",
        "the kernel's features",
        "nothing (one line per layer)",
        "gecko sandbox check",
    )
    run = _command(
        box,
        "run",
        "run one Python program exactly as code evaluation does",
        "FILE.py",
        "the program's stdout/stderr, then its status line",
        "gecko sandbox run solution.py --timeout 5",
    )
    run.add_argument("file", metavar="FILE.py")
    run.add_argument("--timeout", type=float, default=10.0, help="wall-clock seconds (default: 10)")
    run.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="run even where the kernel sandbox is unavailable (rlimits and an audit hook only)",
    )


def _sandbox(args: argparse.Namespace) -> int:
    import math

    from gecko.eval.sandbox import SandboxLimits, check_layers, run_sandboxed

    if args.action == "check":
        layers = check_layers()
        for layer in layers:
            mark = "ok " if layer.active else ("NO " if layer.required else "-- ")
            print(f"{mark} {layer.name}: {layer.detail}")
        return 0 if all(layer.active or not layer.required for layer in layers) else 1
    try:
        program = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise GeckoError(f"{args.file}: cannot read the program ({e})") from e
    limits = SandboxLimits(timeout_s=args.timeout, cpu_s=math.ceil(args.timeout))
    result = run_sandboxed(program, limits, unsafe_no_sandbox=args.unsafe_no_sandbox)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    print(
        f"gecko sandbox: {result.status} (exit {result.returncode}, {result.seconds:.2f} s, {result.isolation})",
        file=sys.stderr,
    )
    return (
        124
        if result.status == "timeout"
        else (result.returncode if result.returncode > 0 else int(result.status != "passed"))
    )


DEVICE_COMMANDS = ("run", "train", "eval", "generate", "sft", "import", "chat")
"""Commands that run the model, so train.device must exist (data and tokenizer work runs on CPU machines)."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DIST)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _load(args: argparse.Namespace) -> GeckoConfig | None:
    if getattr(args, "model", None) and args.config and "=" in args.config and not Path(args.config).exists():
        args.overrides, args.config = (
            [args.config, *args.overrides],
            None,
        )  # `gecko chat --model DIR key=value`
    if args.config is None and not getattr(args, "model", None):
        raise GeckoError(f"gecko {args.command}: give a config (e.g. {DEMO}) or --model DIR")
    cfg = load_config(
        args.config,
        [*args.overrides, *_eval_overrides(args), *_generate_overrides(args), *_export_overrides(args)],
        needs_device=args.command in DEVICE_COMMANDS,
    )
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2, ensure_ascii=False))
        return None
    return cfg


def _write_command(cfg: GeckoConfig, args: argparse.Namespace) -> None:
    """The commands that write RUN (called with its lock held)."""
    if args.command == "data" and args.action == "clean":
        from gecko.data.pipeline import run_clean
        from gecko.stages import stage_dir

        run_clean(cfg.data, stage_dir(cfg, "data"))
        print((stage_dir(cfg, "data") / "clean_report.md").read_text(encoding="utf-8"))
    elif args.command == "run":
        run_all(cfg, force=args.force)
    elif args.command == "import":
        from gecko.importer import import_model

        print(
            f"imported as {import_model(cfg, Path(args.source))}; continue with `gecko train {args.config}`"
        )
    elif args.command == "ablate":
        _ablate(cfg, args)
    elif args.command == "tokenizer" and args.action == "compare":
        _compare(cfg, args)
    elif args.command == "tokenizer" and args.action == "extend":
        _extend(cfg, args)
    elif args.command == "tokenizer" and args.action == "report":
        _report(cfg, args)
    else:
        run_stage(cfg, BY_NAME[args.stage], force=args.force)


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors caused by input or environment print as one `gecko: error: …` line (with -v,
    OS errors keep their traceback)."""
    args = build_parser().parse_args(argv)
    setup_output(QUIET if args.quiet else VERBOSE if args.verbose else NORMAL, args.progress_every)
    try:
        return _dispatch(args)
    except GeckoError as e:
        print(f"gecko: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a permission, a vanished file: the environment, not a bug
        if args.verbose:
            raise
        print(f"gecko: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gecko: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    """The command's handler: read-only commands first, then those that write RUN under its lock."""
    if args.command == "sandbox":
        return _sandbox(args)
    if args.command == "status":
        return _status(args)
    if args.command == "data" and args.action in DATA_STEP_HELP:
        _data_step(args)
        return 0
    if args.command == "data" and args.action in CORPUS_STEP_HELP:
        _corpus_step(args)
        return 0
    cfg = _load(args)
    if cfg is None:
        return 0
    if args.command == "chat":
        _chat(cfg, args)  # reads the run folder only
        return 0
    if args.command == "generate" and args.model:
        _generate_from_folder(cfg, args)  # outside any run folder
        return 0
    with run_lock(cfg.run_path):  # one writer per run folder; a second one stops here, naming the first
        _write_command(cfg, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
