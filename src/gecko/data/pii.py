"""PII scrubbing into typed placeholders (<PHONE>, <RRN>, …), with counts per type in the metadata.

Patterns are precise rather than greedy, because a false positive damages good text (a date, a version, a
product code) while recall is checked on a planted set (bench/pii_eval.py, docs/cleaning.md):
- resident registration numbers: YYMMDD-GNNNNNN with a real date, gender digit 1-8 and the mod-11 checksum;
- phones: Korean mobile (010 …) and landline (02, 031 … 064) numbers with separators, and +82 forms;
- cards: 13-19 digits in card grouping, a card-network first digit and a valid Luhn sum;
- bank accounts and passports: digit patterns only next to a word that says so (계좌, 은행, account, 여권,
  passport …), since bare they look like any product code;
- IPs: IPv4/IPv6 addresses that are globally routable (private, loopback and documentation ranges are not
  personal and are common in code samples);
- secrets: cloud keys, tokens with a known prefix, private-key blocks, JWTs and quoted values assigned to
  password/secret/token/api_key names.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ahocorasick_rs import AhoCorasick
from datatrove.data import Document

from gecko.data.filters.base import GeckoStep
from gecko.data.filters.charclass import all_characters

PII_TYPES = ("secret", "email", "rrn", "card", "phone", "bank_account", "passport", "ip")
"""Also the order of application: an earlier type's placeholder is never re-matched by a later one."""


def _rrn_ok(m: re.Match) -> bool:
    digits = re.sub(r"\D", "", m.group(0))
    if not (1 <= int(digits[2:4]) <= 12 and 1 <= int(digits[4:6]) <= 31):
        return False
    total = sum(int(d) * w for d, w in zip(digits[:12], (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)))
    return (11 - total % 11) % 10 == int(digits[12])


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _card_ok(m: re.Match) -> bool:
    digits = re.sub(r"\D", "", m.group(0))
    return 13 <= len(digits) <= 19 and digits[0] in "3456" and luhn_ok(digits)


def _ip_ok(m: re.Match) -> bool:
    try:
        addr = ipaddress.ip_address(m.group(0))
    except ValueError:
        return False
    return addr.is_global and not addr.is_multicast


def _account_ok(m: re.Match) -> bool:
    return 10 <= sum(c.isdigit() for c in m.group("value")) <= 14


_W = "0-9A-Za-z_"  # ASCII word characters: Korean particles attach directly to numbers (010-…으로)
_B = rf"\d(?<![{_W}.+-]\d)"  # a digit not glued to a longer token on its left (the digit comes first: see _D)
_E = rf"(?![{_W}-]|\.\d)"  # … or on the right
# Python's re scans fast for a pattern's first character only when the pattern starts with one: each digit
# pattern consumes its first digit, then looks behind it (3-4x faster than a leading lookbehind).
BANK_WORDS = ("계좌", "통장", "은행", "입금", "송금", "예금주", "농협", "카카오뱅크", "토스뱅크", "새마을금고", "우체국",
              "account", "acct", "bank", "iban")
SECRET_WORDS = ("password", "passwd", "secret", "api_key", "apikey", "access_token", "accesstoken", "auth_token",
                "authtoken", "private_key", "privatekey", "client_secret")


# Every RRN, card, phone and IPv4 match contains one of these digit shapes (six digits, 3-4 digits around a
# separator, a dotted quad); one search over a text without them (most prose) replaces four pattern scans.
# Placeholders hold no digits, so screening the original text is safe. Leading with \d keeps re's fast scan.
_DIGIT_SCREEN = re.compile(r"\d(?:\d{5}|\d{2}[-. ]\d{4}|\.\d{1,3}\.\d{1,3}\.\d)")
_ACCOUNT_SCREEN = re.compile(r"\d(?:\d-\d\d|\d{9})")  # every account value: NN-NN… or ten digits
# An IPv6 match has at least three colons with only hex digits between two of them.
_IPV6_SCREEN = re.compile(r":[0-9A-Fa-f]{0,4}:")
SECRET_PREFIXES = ("akia", "asia", "aiza", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "sk-",
                   "sk_live_", "glpat-", "eyj")


def case_variants(chars: str) -> str:
    """Every character that `(?i)` matches to one of `chars`, found by scanning all code points (~20 ms)."""
    return "".join(sorted(set(re.findall(f"(?i)[{re.escape(chars)}]", all_characters()))))


def _after_word(words: tuple[str, ...], rest: str) -> re.Pattern[str]:
    """`(?i)(?:word|…)rest`, written so that re scans fast for its first character: same matches and groups
    (each word is a regex that starts with a plain character).

    re has no fast scan for a case-insensitive alternation and tries every word at every position (~100 ns a
    character). Here a case-sensitive class of every character that (?i) matches to a word's first letter is
    consumed first, and each word, in the same order, checks that letter behind it, then goes on as before."""
    first = re.escape(case_variants("".join(word[0] for word in words)))
    after_first = "|".join(f"(?<={re.escape(word[0])}){word[1:]}" for word in words)
    return re.compile(f"[{first}](?i:(?:{after_first}){rest})")


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[re.Match], bool] | None = None
    group: str | int = 0
    """The part replaced by the placeholder (a context word before it stays)."""
    needs: tuple[str, ...] = ()
    """Skip the regex unless the lowercased text contains one of these words (all rules' words are found in
    one Aho-Corasick pass: see `scrub`)."""
    screen: re.Pattern[str] | None = None
    """Skip the regex unless this pattern, which every match of it contains, occurs in the text."""


RULES: tuple[Rule, ...] = (
    Rule("secret", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE "
                              r"KEY-----"), needs=("private key-----",)),
    Rule("secret", re.compile(r"(?<![A-Za-z0-9])(?:(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}"
                              r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|xox[abposr]-[A-Za-z0-9-]{10,}"
                              r"|sk-(?:proj-)?[A-Za-z0-9_-]{32,}|sk_live_[0-9A-Za-z]{24,}|glpat-[0-9A-Za-z_-]{20}"
                              r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"),
         needs=SECRET_PREFIXES),
    Rule("secret", _after_word(("password", "passwd", "secret", "secret_key", "api_?key", "access_?token",
                                "auth_?token", "private_?key", "client_?secret", "aws_secret_access_key"),
                               r"[\"']?\s*[:=]\s*[\"'](?P<value>[^\"'\s<>]{12,})[\"']"), group="value",
         needs=SECRET_WORDS),
    Rule("email", re.compile(r"(?<![0-9A-Za-z_.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?![A-Za-z0-9_-])"),
         needs=("@",)),
    Rule("rrn", re.compile(_B + r"\d[01]\d[0-3]\d\s?[-–]?\s?[1-8]\d{6}" + _E), _rrn_ok, screen=_DIGIT_SCREEN),
    Rule("card", re.compile(_B + r"(?:\d{3}[- ]\d{4}[- ]\d{4}[- ]\d{1,7}|\d{3}[- ]\d{6}[- ]\d{4,5}|\d{12,18})" + _E),
         _card_ok, screen=_DIGIT_SCREEN),
    # +82…, 01x… or (0x)… / 0x…, not glued on the left; the first character is consumed, then checked behind
    Rule("phone", re.compile(r"[+0(](?<![0-9A-Za-z_+][+0(])(?:(?<=\+)82[-. ]?(?:\(0\))?0?"
                             r"(?:1[016789]|2|[3-6][1-5]|70)[-. ]?\d{3,4}[-. ]?\d{4}"
                             r"|(?<=0)1[016789][-. ]?\d{3,4}[-. ]?\d{4}"
                             r"|(?:(?<=\()0|(?<=0))(?:2|[3-6][1-5]|70)\)?[-. )]\s?\d{3,4}[-. ]\d{4})" + _E),
         screen=_DIGIT_SCREEN),
    Rule("bank_account", _after_word(BANK_WORDS, r"[^\d\n]{0,20}?(?P<value>(?<![\d-])\d{2,6}(?:-\d{2,7}){1,3}"
                                                 r"(?![\d-])|(?<!\d)\d{10,14}(?!\d))"), _account_ok, "value",
         BANK_WORDS, _ACCOUNT_SCREEN),
    Rule("passport", _after_word(("여권", "passport"), r"[^\n]{0,20}?(?P<value>(?<![A-Za-z0-9])"
                                                     r"(?-i:[MSRODG]\d{8}|M\d{3}[A-Z]\d{4})(?![A-Za-z0-9]))"),
         group="value",
         needs=("여권", "passport")),
    Rule("ip", re.compile(r"\d(?<![\d.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\d.]|\.\d)"), _ip_ok,
         screen=_DIGIT_SCREEN),
    Rule("ip", re.compile(r"[0-9A-Fa-f:](?<![0-9A-Za-z_:][0-9A-Fa-f:])[0-9A-Fa-f]{0,3}:(?:[0-9A-Fa-f]{0,4}:){2,6}"
                          r"[0-9A-Fa-f]{1,4}(?![0-9A-Za-z_:])"), _ip_ok, needs=(":",), screen=_IPV6_SCREEN),
)


NEEDS_WORDS = sorted({word for rule in RULES for word in rule.needs})
# One pass for every rule's words, overlapping matches included (a word inside or across another one still
# counts); a regex alternation per rule scanned each text once per rule, at ~4 ns a character.
_NEEDS = AhoCorasick(NEEDS_WORDS)


def words_present(lowers: list[str]) -> list[set[str]]:
    """The NEEDS_WORDS that occur in each of `lowers`, found in one pass over all of them joined by newlines
    (no word holds one, so no match spans two texts): one call instead of one per short comment."""
    try:
        matches = _NEEDS.find_matches_as_indexes("\n".join(lowers), overlapping=True)
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form for the automaton: test word by word
        return [{word for word in NEEDS_WORDS if word in lower} for lower in lowers]
    present: list[set[str]] = [set() for _ in lowers]
    if matches:
        starts = np.cumsum([0] + [len(lower) + 1 for lower in lowers[:-1]])  # of each text in the joined one
        word, position, _ = np.array(matches).T
        pairs = np.unique((np.searchsorted(starts, position, side="right") - 1) * len(NEEDS_WORDS) + word)
        for text, i in zip(*divmod(pairs, len(NEEDS_WORDS))):
            present[text].add(NEEDS_WORDS[i])
    return present


def scrub(text: str, types: tuple[str, ...] = PII_TYPES) -> tuple[str, Counter[str]]:
    """Text with each PII span replaced by `<TYPE>`, and the number replaced per type."""
    return scrub_batch([text], types)[0]


def scrub_batch(texts: list[str], types: tuple[str, ...] = PII_TYPES) -> list[tuple[str, Counter[str]]]:
    """scrub() of many texts, with the context words of all of them found in one pass."""
    present = words_present([text.lower() for text in texts])
    return [_scrub(text, words, types) for text, words in zip(texts, present)]


def _scrub(text: str, present: set[str], types: tuple[str, ...]) -> tuple[str, Counter[str]]:
    """scrub() of a text whose lowercased form holds the context words `present`."""
    counts: Counter[str] = Counter()
    screened: dict[re.Pattern[str], bool] = {}
    for rule in RULES:
        if rule.kind not in types or (rule.needs and present.isdisjoint(rule.needs)):
            continue
        if rule.screen is not None:
            if rule.screen not in screened:
                screened[rule.screen] = rule.screen.search(text) is not None
            if not screened[rule.screen]:
                continue

        def replace(m: re.Match, rule: Rule = rule) -> str:
            if rule.valid is not None and not rule.valid(m):
                return m.group(0)
            counts[rule.kind] += 1
            start, end = m.span(rule.group)
            s0 = m.start()
            whole = m.group(0)
            return whole[: start - s0] + f"<{rule.kind.upper()}>" + whole[end - s0:]

        text = rule.pattern.sub(replace, text)
    return text, counts


class PiiScrubber(GeckoStep):
    """Replaces PII by typed placeholders; metadata["pii"] counts them per type. Never drops a document."""

    name = "🔒 gecko pii"
    type = "✂️ - FORMAT"
    step = "pii"

    def __init__(self, types: tuple[str, ...] = PII_TYPES) -> None:
        super().__init__()
        self.types = types

    def apply_batch(self, batch: list[Document]) -> list[Document]:
        for doc, (text, counts) in zip(batch, scrub_batch([doc.text for doc in batch], self.types)):
            doc.text = text
            if counts:
                doc.metadata["pii"] = dict(counts)
                for kind, n in counts.items():
                    self.stat_update(f"pii_{kind}", value=n)
        return batch
