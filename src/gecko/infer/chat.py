"""The chat format: one Jinja template, shipped in tokenizer_config.json, used by SFT, `gecko chat` and
transformers' `apply_chat_template` alike.

A turn is `<|role|>\\n content <|end|>\\n`; the reserved role tokens are single special tokens, so a
conversation tokenizes as the concatenation of its turns and the assistant spans are exact.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from gecko.errors import DataError
from gecko.infer.generate import Sampling, stream_tokens
from gecko.tokens import CHAT, CHAT_TEMPLATE, for_continuations

SYSTEM, USER, ASSISTANT, END = CHAT
ROLES = ("system", "user", "assistant")

Message = dict[str, str]


@cache
def _compiled(template: str) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template)


def render(
    messages: list[Message],
    template: str = CHAT_TEMPLATE,
    bos_token: str = "<s>",
    add_generation_prompt: bool = False,
) -> str:
    return _compiled(template).render(
        messages=messages, bos_token=bos_token, add_generation_prompt=add_generation_prompt
    )


def read_chat_template(folder: Path) -> tuple[str, str]:
    """(template, bos_token) from a Hugging Face folder's tokenizer_config.json."""
    path = Path(folder) / "tokenizer_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read: {e}") from None
    template = config.get("chat_template")
    if not isinstance(template, str):
        raise DataError(f"{path}: no chat_template string; export the model with `gecko export` or add one")
    return template, config.get("bos_token") or ""


def check_conversation(messages: Any, where: str) -> list[Message]:
    """A list of {role, content} turns with at least one assistant turn; anything else names `where`."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: messages must be a non-empty list")
    for i, m in enumerate(messages):
        if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)):
            raise DataError(
                f"{where}: messages[{i}] must be {{role: system|user|assistant, content: str}}, found {m!r}"[
                    :300
                ]
            )
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: no assistant turn to learn from")
    return messages


def tokenize_conversation(
    tokenizer: Tokenizer, messages: list[Message], template: str, bos_token: str
) -> tuple[list[int], list[bool]]:
    """Token ids of the rendered conversation and, per token, whether it belongs to an assistant reply
    (its content and closing `<|end|>`): the tokens SFT learns to produce.

    Assistant spans are found by rendering prefixes: the text from render(turns before, generation
    prompt) to render(turns up to this one). A template for which these are not prefixes is refused.
    """
    text = render(messages, template, bos_token)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(messages[:i], template, bos_token, add_generation_prompt=True)
        upto = render(messages[: i + 1], template, bos_token)
        if not (text.startswith(upto) and upto.startswith(before)):
            raise DataError(
                "chat template does not render conversations prefix by prefix; "
                "cannot locate the assistant replies"
            )
        spans.append((len(before), len(upto)))
    encoding = tokenizer.encode(text, add_special_tokens=False)
    mask = [any(a <= start < b for a, b in spans) for start, _ in encoding.offsets]
    return encoding.ids, mask


# ----------------------------------------------------------------------------------------------------
# Interactive chat


class TextStream:
    """Decodes a growing list of ids into text pieces as they become printable: a character split across
    byte-fallback tokens is held back until it is complete."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer, self.shown = tokenizer, 0
        self.ids: list[int] = []

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):
            return ""
        piece, self.shown = text[self.shown :], len(text)
        return piece


def chat_reply(
    model: Any,
    tokenizer: Tokenizer,
    messages: list[Message],
    template: str,
    bos_token: str,
    max_new_tokens: int,
    sampling: Sampling,
    generator: torch.Generator,
) -> Iterator[str]:
    """Stream the assistant's reply to `messages` as text pieces; stops at <|end|> or </s>."""
    prompt = render(messages, template, bos_token, add_generation_prompt=True)
    ids = tokenizer.encode(prompt, add_special_tokens=False).ids
    room = model.cfg.max_seq_len - len(ids)
    if room <= 0:
        raise DataError(
            f"conversation is {len(ids)} tokens, the model's context is {model.cfg.max_seq_len}; "
            "start a new chat (/reset)"
        )
    stops = {tokenizer.token_to_id(END), tokenizer.token_to_id("</s>")} - {None}
    text = TextStream(tokenizer)
    for token in stream_tokens(model, ids, min(max_new_tokens, room), sampling, generator):
        if token in stops:
            return
        yield text.push(token)


def run_chat(
    model_dir: Path, max_new_tokens: int, sampling: Sampling, seed: int, system: str | None = None
) -> None:
    """A terminal chat: each reply streams as it is sampled; /reset starts over, /exit or EOF quits."""
    from gecko.model.hf import load_hf
    from gecko.terminal import styled, text_console

    model, _ = load_hf(model_dir)
    tokenizer = for_continuations(
        Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    )  # decodes replies
    template, bos = read_chat_template(model_dir)
    console, generator = text_console(), torch.Generator().manual_seed(seed)
    start: list[Message] = [{"role": "system", "content": system}] if system else []
    messages = list(start)
    console.print(styled(f"{model_dir} — /reset starts over, /exit quits", "dim"))
    while True:
        try:
            line = console.input(styled("you> ", "bold green")).strip()
        except EOFError:
            return
        if line == "/exit":
            return
        if line == "/reset":
            messages = list(start)
        if line in ("/reset", ""):
            continue
        messages.append({"role": "user", "content": line})
        console.print(styled("gecko> ", "bold cyan"), end="")
        reply = ""
        pieces = chat_reply(model, tokenizer, messages, template, bos, max_new_tokens, sampling, generator)
        for piece in pieces:
            reply += piece
            sys.stdout.write(piece)
            sys.stdout.flush()
        print()
        messages.append({"role": "assistant", "content": reply})
