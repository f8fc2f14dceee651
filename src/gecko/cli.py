"""`gecko <stage> CONFIG [key=value …]` runs one stage; `gecko run CONFIG` chains them all.

Handlers are thin: parse, load the config, call the library. GeckoErrors print as one line, no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from rich.logging import RichHandler

from gecko.config import GeckoConfig, load_config, to_dict
from gecko.errors import GeckoError
from gecko.stages import BY_NAME, run_all, run_stage

STAGE_HELP = {
    "tokenize": "encode the corpus into packed shards with a train/validation split by document",
    "train": "pretrain the model on the shards (resumes from the last checkpoint)",
    "eval": "score the final checkpoint: bits per byte per language",
    "export": "write a Hugging Face LlamaForCausalLM folder",
    "generate": "sample continuations of the configured prompts from the exported model",
}


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override a config key, e.g. train.steps=50")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko", description="Build bilingual Korean·English LLMs that code.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every stage, skipping those already complete")
    _add_config_args(run)
    run.add_argument("--force", action="store_true", help="rerun every stage even if complete")
    for name, text in STAGE_HELP.items():
        _add_config_args(sub.add_parser(name, help=text))
    data = sub.add_parser("data", help="corpus commands").add_subparsers(dest="action", required=True)
    _add_config_args(data.add_parser("run", help="the whole data stage: sources → RUN/data/corpus.jsonl"))
    tok = sub.add_parser("tokenizer", help="tokenizer commands").add_subparsers(dest="action", required=True)
    _add_config_args(tok.add_parser("train", help="train the BPE tokenizer on the corpus"))
    return parser


def _load(args: argparse.Namespace) -> GeckoConfig | None:
    cfg = load_config(args.config, args.overrides)
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2, ensure_ascii=False))
        return None
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(show_path=False, show_time=False)])
    try:
        cfg = _load(args)
        if cfg is None:
            return 0
        if args.command == "run":
            run_all(cfg, force=args.force)
        else:
            run_stage(cfg, BY_NAME[args.command])  # `data run` → data stage, `tokenizer train` → tokenizer
    except GeckoError as e:
        print(f"gecko: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
