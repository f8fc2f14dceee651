"""PII scrubbing into typed placeholders (<PHONE>, <RRN>, …), with counts per type in the metadata.

A false positive damages good text (a date, an ISBN, a parcel number), a miss leaks a person, so each type
is recognised by its *published format and validation rule*, and a shape too generic to stand alone (ten
bare digits, a spaced licence number) is taken only right after a word naming its type (계좌, account,
사업자번호, 면허 …). "Right after" means the nearest cue word within a few dozen characters before the value
(across a table header or JSON key), so a tracking number under "운송장번호" next to an account is not an
account. docs/cleaning.md lists each type's rule, an example and its precision/recall on a planted set
generated apart from these rules (bench/pii_gen.py, bench/pii_eval.py).

Size: over 500 lines because a quarter of it is the cue-word table (Korean and English words naming each
type) and most of the rest the per-type rules with their validators; a rule, its cues and its place in
the priority order are read and changed together, which splitting them would scatter.
"""

from __future__ import annotations

import bisect
import ipaddress
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from datatrove.data import Document

from gecko.config import PII_TYPES
from gecko.data.engine.step import GeckoStep
from gecko.data.text.charclass import all_characters, codepoints
from gecko.errors import ConfigError

# ---- validation rules (public specifications) -------------------------------------------------------------

_ID_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)


def rrn_check_ok(d: str) -> bool:
    """Resident registration number issued before Oct 2020: the 13th digit is (11 - Σwᵢdᵢ mod 11) mod 10."""
    return (11 - sum(w * int(c) for w, c in zip(_ID_WEIGHTS, d)) % 11) % 10 == int(d[12])


def frn_check_ok(d: str) -> bool:
    """Foreigner registration number issued before Oct 2020: the same weighted sum, shifted by 2."""
    return ((11 - sum(w * int(c) for w, c in zip(_ID_WEIGHTS, d)) % 11) % 10 + 2) % 10 == int(d[12])


def brn_check_ok(d: str) -> bool:
    """NTS business registration number: weights 1,3,7,1,3,7,1,3,5 plus ⌊5·d₉/10⌋, the 10th digit completes
    the sum to a multiple of 10."""
    s = sum(w * int(c) for w, c in zip((1, 3, 7, 1, 3, 7, 1, 3, 5), d)) + int(d[8]) * 5 // 10
    return (10 - s % 10) % 10 == int(d[9])


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def card_network_ok(d: str) -> bool:
    """An issuer range (IIN) with its lengths: Visa 4 (13/16/19), Mastercard 51-55 and 2221-2720, AMEX 34/37
    (15), JCB 3528-3589, Diners 30/36/38 (14/16), Discover 6011/644-649/65, UnionPay 62, and Korean
    domestic-only cards 9 (16). All use Luhn; UnionPay only sometimes, so it is checked by the caller."""
    n, p2, p4 = len(d), int(d[:2]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if 3528 <= p4 <= 3589 or p2 == 62 or p4 == 6011 or p2 == 65 or 644 <= int(d[:3]) <= 649:
        return 16 <= n <= 19
    if p2 in (30, 36, 38):
        return n in (14, 16)
    return d[0] == "9" and n == 16


# ---- cue words --------------------------------------------------------------------------------------------

CUES: dict[str, tuple[str, ...]] = {
    "rrn": (
        "주민등록",
        "주민번호",
        "주민 번호",
        "resident registration",
        "resident no",
        "resident_no",
        "rrn",
        "jumin",
    ),
    "frn": ("외국인등록", "외국인 등록", "alien registration", "alien reg", "alien_reg", "arc no", "frn"),
    "brn": ("사업자", "business registration", "business no", "business_n", "biz_no", "biz no", "brn"),
    "driver_license": ("운전면허", "면허번호", "면허 번호", "driver", "licence", "license"),
    "passport": ("여권", "passport"),
    "bank_account": (
        "계좌",
        "통장",
        "입금",
        "송금",
        "이체",
        "예금주",
        "은행",
        "뱅크",
        "농협",
        "수협",
        "신협",
        "새마을금고",
        "우체국",
        "신한",
        "카카오",
        "토스",
        "케이뱅크",
        "씨티",
        "account",
        "acct",
        "bank",
        "deposit",
        "a/c",
        "iban",
        "kb",
        "nh",
        "ibk",
        "sc",
        "kookmin",
        "shinhan",
        "woori",
        "nonghyup",
        "kakao",
        "hana",
        "citibank",
        "toss",
        "suhyup",
        "shinhyup",
        "korea post",
        "dgb",
        "mg",
    ),
    "phone": (
        "전화",
        "연락처",
        "휴대폰",
        "핸드폰",
        "휴대전화",
        "팩스",
        "phone",
        "mobile",
        "tel",
        "fax",
        "call",
    ),
    "card": ("카드", "card"),
    "secret": (
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "bearer",
        "authorization",
        "api key",
        "api_key",
        "api-key",
        "apikey",
        "passphrase",
        "access key",
        "access_key",
        "private key",
        "credential",
        "비밀번호",
        "패스워드",
        "토큰",
        "api 키",
        "시크릿",
        "인증키",
    ),
    # look-alikes: a number under one of these words is not a person's
    "other": (
        "운송장",
        "송장",
        "택배",
        "등기",
        "tracking",
        "waybill",
        "주문",
        "order",
        "invoice",
        "승인번호",
        "isbn",
        "우편",
        "zip",
        "postal",
        "모델",
        "품번",
        "part no",
        "sku",
        "serial",
        "시리얼",
        "버전",
        "version",
    ),
}
_CUE_KIND = {word: kind for kind, words in CUES.items() for word in words}
# ASCII cue words must start a word ("tel" not in "hotel"), short ones end one too ("sc" not in "schema");
# Korean ones attach to particles and compounds (입금계좌는)
# (on lowercased text). Written to lead with a class of the words' first characters, each word checking its
# own first character behind it: re scans fast for a leading class, but tries every word of an alternation at
# every position (~20x slower on a 48-character window).
_CUE_RE = re.compile(
    "["
    + re.escape("".join(sorted({w[0] for w in _CUE_KIND})))
    + "](?:"
    + "|".join(
        f"(?<={re.escape(w[0])})"
        + (rf"(?<![a-z]{re.escape(w[0])})" if w.isascii() else "")
        + re.escape(w[1:])
        + ("(?![a-z])" if w.isascii() and len(w) <= 4 else "")
        for w in sorted(_CUE_KIND, key=len, reverse=True)
    )
    + ")"
)
CUE_BEFORE, CUE_AFTER = 48, 32
"""Characters searched for a cue word before a value (reaching over a table header row or a JSON key), and
after it when none is before (an HTML comment or a label that follows)."""


def cue_before(text: str, start: int) -> str | None:
    """The type named by the nearest cue word ending within CUE_BEFORE characters before `start`."""
    cues = list(_CUE_RE.finditer(text[max(0, start - CUE_BEFORE) : start].lower()))
    return _CUE_KIND[cues[-1].group(0)] if cues else None


def cue_near(text: str, start: int, end: int) -> str | None:
    """The type named by the nearest cue word before the value, else by the first one just after it."""
    before = cue_before(text, start)
    if before is not None:
        return before
    after = _CUE_RE.search(text[end : end + CUE_AFTER].lower())
    return _CUE_KIND[after.group(0)] if after else None


def _cue(text: str, m: re.Match) -> str | None:
    return cue_near(text, m.start(), m.end())


# ---- rules ------------------------------------------------------------------------------------------------

_L = r"(?<![0-9A-Za-z_])(?<![0-9][.\-])"  # not inside a longer token or number chain (Hangul may touch)
_R = r"(?![0-9A-Za-z_])(?![.\-][0-9])"
_SEP = r"(?:\s?[-–—]\s?)"  # hyphen or dash, optionally spaced

SECRET_WORDS = CUES["secret"] + ("비번",)
Validator = Callable[[str, re.Match], str | None]
"""(text, match) → the type to record, or None to keep the text."""


@dataclass(frozen=True)
class Rule:
    kind: str
    """The type this rule may produce (a validator may refine rrn → frn); selects the rule in `types`."""
    pattern: re.Pattern[str]
    valid: Validator | None = None
    needs: tuple[str, ...] = ()
    """Substrings (case-sensitive) one of which every match contains: without any, the regex is skipped
    (`in` is a memchr-speed scan; a regex that cannot lead with a literal scans ~10x slower)."""
    scope: str = "text"
    """Where the regex runs: the whole "text"; "digits" windows (around runs holding 9+ digits or a dotted
    quad: one scan finds them, so prose costs one pass instead of one per rule); "digit_clusters" (around
    clusters of 7+ digits); "secret_cue" windows (near a secret's name); "at" windows (around each @);
    "colons" (around runs of hex digits and colons that end like an IPv6 address)."""


GATES = "_-.AJx"
"""Characters that many `needs` substrings hold and much prose lacks (most Korean text has no `_`), then
those of the token rule's other prefixes (AKIA, ASIA, AIza; eyJ; xox): a Korean comment rarely holds one."""


@cache
def gated(needs: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`needs` as (gate, substrings) pairs: the substrings holding the same first GATES character under it,
    each other substring under itself. One memchr-speed test of an absent gate skips its whole group: 5 to
    8 one-character scans of a Korean document instead of the token rule's 19 (~0.08 CPU-s less than
    gating on `_-.` alone over the benchmark's 106,051 Korean documents)."""
    groups: dict[str, list[str]] = {}
    for word in needs:
        gate = next((c for c in GATES if c in word), word)
        groups.setdefault(gate, []).append(word)
    return tuple((gate, tuple(words)) for gate, words in groups.items())


def holds_gated(text: str, gates: tuple[tuple[str, tuple[str, ...]], ...]) -> bool:
    """Whether `text` holds one of the substrings of `gates` (a rule's needs, `gated`): plain loops, ~2x
    cheaper than `any` over generators on the short comments that are most documents."""
    for gate, words in gates:
        if gate in text:
            for word in words:
                if word in text:
                    return True
    return False


def _digits(m: re.Match) -> str:
    return re.sub(r"\D", "", m.group(0))


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _resident(text: str, m: re.Match) -> str | None:
    """YYMMDD + a gender/century digit (1-4 citizens, 5-8 foreigners; 3/4/7/8 born 2000+) + 6 digits. Since
    Oct 2020 the last six are random (no region code, no check digit), so the check digit cannot be required:
    a real birth date consistent with the century digit is the rule, and another type's cue word nearest to an
    unseparated 13-digit run (계좌, 운송장, order, …) makes it that type's."""
    d = _digits(m)
    g, yy, mm, dd = int(d[6]), int(d[:2]), int(d[2:4]), int(d[4:6])
    if dd > _MONTH_DAYS[mm - 1] or (g in (3, 4, 7, 8) and yy > 30):  # 2000s births: not a future year
        return None
    kind = "frn" if g >= 5 else "rrn"
    if m.group("sep") or (frn_check_ok(d) if g >= 5 else rrn_check_ok(d)):
        return kind
    return kind if _cue(text, m) in (None, "rrn", "frn") else None


def _card(text: str, m: re.Match) -> str | None:
    d = _digits(m)
    if not card_network_ok(d):
        return None
    grouped_unionpay = d.startswith("62") and m.group(0) != d  # printed in groups: a card, Luhn or not
    return "card" if luhn_ok(d) or grouped_unionpay else None


def _brn(text: str, m: re.Match) -> str | None:
    """Checksum always; ten bare digits also need a cue (one in ten random numbers passes the checksum)."""
    if not brn_check_ok(_digits(m)):
        return None
    return "brn" if m.group(0)[3:4] in "-– " or _cue(text, m) == "brn" else None


_PRODUCT_CODE_CUE = re.compile(
    r"(?i:모델|품번|제품\s?코드|부품\s?번호|part\s?no|p/n|sku|serial|model)"
    r"[^\n\d]{0,8}$"
)


def _phone(text: str, m: re.Match) -> str | None:
    """A phone-shaped number right after a product-code word (모델번호, 품번, part no., SKU) is that code."""
    return None if _PRODUCT_CODE_CUE.search(text, max(0, m.start() - 16), m.start()) else "phone"


def _needs_cue(kind: str) -> Validator:
    return lambda text, m: kind if _cue(text, m) == kind else None


def _driver(text: str, m: re.Match) -> str | None:
    """Region (2 digits, or its name on licences before 2011) - year - serial - check: the 2-2-6-2 grouping
    stands alone, twelve bare digits need a cue."""
    grouped = not m.group(0).isdigit()
    return "driver_license" if grouped or _cue(text, m) == "driver_license" else None


BANK_LAYOUTS = {
    (6, 2, 6),
    (3, 2, 4, 3),
    (3, 3, 6),
    (3, 2, 6),
    (4, 3, 6),
    (3, 4, 4, 2),
    (4, 2, 7),
    (3, 6, 5),
    (3, 6, 2, 3),
    (3, 6, 3),
    (3, 2, 6, 1),
}
"""Printed layouts of the major banks' accounts (KB 6-2-6 and 3-2-4-3, Shinhan 3-3-6 / 3-2-6, Woori 4-3-6,
NH 3-4-4-2 / 6-2-6, Kakao and MG 4-2-7, Hana 3-6-5, IBK 3-6-2-3, Citi 3-6-3, DGB 3-2-6-1, …); none is the
shape of a phone, date, ISBN, card or postcode, so they stand alone. Toss Bank's 4-4-4 does only with its
1000 prefix, since parcel numbers are printed 4-4-4 too."""


def _bank(text: str, m: re.Match) -> str | None:
    """A bank's printed layout stands alone unless a look-alike's cue word comes right before it; any
    10-14 digits (grouped or bare) after a bank cue word (계좌, 입금, a bank's name, account) are taken."""
    value = m.group(0)
    layout = tuple(len(g) for g in re.split(r"[- ]", value))
    if _cue(text, m) == "bank_account" and 10 <= sum(layout) <= 14:
        return "bank_account"
    if (
        "-" in value
        and cue_before(text, m.start()) != "other"
        and (layout in BANK_LAYOUTS or (layout == (4, 4, 4) and value.startswith("100")))
    ):
        return "bank_account"
    return None


def isbn13_ok(d: str) -> bool:
    """A 978/979 book number with its check digit (weights 1,3,1,3,…)."""
    return (
        len(d) == 13
        and d[:3] in ("978", "979")
        and sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(d)) % 10 == 0
    )


def _bare_account(text: str, m: re.Match) -> str | None:
    """Bare digits are an account only after a bank cue, and never a valid ISBN-13."""
    return "bank_account" if _cue(text, m) == "bank_account" and not isbn13_ok(m.group(0)) else None


def _ip(text: str, m: re.Match) -> str | None:
    try:
        addr = ipaddress.ip_address(m.group(0))
    except ValueError:
        return None
    return "ip" if addr.is_global and not addr.is_multicast else None


_REFERENCE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+|v?\d+(?:\.\d+)+\S*|[$<%{].*")


def looks_random(v: str) -> bool:
    """A password or key, not a word, number, version or reference: 8+ characters with letters and digits, or
    letters of both cases and symbols; not `os.environ`, `${VAR}`, `v1.2.3`, `2024-05-01`."""
    if len(v) < 8 or _REFERENCE.fullmatch(v):
        return False
    lower, upper = any(c.islower() for c in v), any(c.isupper() for c in v)
    digit, symbol = any(c.isdigit() for c in v), any(not c.isalnum() for c in v)
    return (lower or upper) and (digit or (lower and upper and symbol))


def _secret_token(text: str, m: re.Match) -> str | None:
    token = m.group(0)
    named = secret_cue().search(token)  # the key itself (DB_PASSWORD), not its value
    return "secret" if named is None and looks_random(token) else None


RULES: tuple[Rule, ...] = (
    Rule(
        "secret",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*"
            r"PRIVATE KEY-----"
        ),
        needs=("PRIVATE KEY-----",),
    ),
    Rule(
        "secret",
        re.compile(
            r"(?<![A-Za-z0-9])(?:(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|gh[pousr]_[A-Za-z0-9]{36,}"
            r"|github_pat_[A-Za-z0-9_]{40,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk-(?:proj-)?[A-Za-z0-9_-]{32,}"
            r"|[sr]k_(?:live|test)_[0-9A-Za-z]{24,}|glpat-[0-9A-Za-z_-]{20}|hf_[A-Za-z]{30,}"
            r"|npm_[A-Za-z0-9]{36}"
            r"|SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}|ya29\.[A-Za-z0-9_-]{20,}"
            r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
        ),
        needs=(
            "AKIA",
            "ASIA",
            "AIza",
            "ghp_",  # gh[pousr]_ spelt out: "gh" alone is in most English text and code ("high", "though")
            "gho_",
            "ghu_",
            "ghs_",
            "ghr_",
            "github_pat_",
            "xox",
            "sk-",
            "k_live_",
            "k_test_",
            "glpat-",
            "hf_",
            "npm_",
            "SG.",
            "ya29.",
            "eyJ",
        ),
    ),
    # the password of a connection URL (postgres://user:PASSWORD@host)
    Rule("secret", re.compile(r"://[^/\s:@]+:(?P<value>[^@\s/]{3,})@[A-Za-z0-9.-]"), needs=("://",)),
    # any random-looking token shortly after a secret's name: `KEY = value`, `"password": "…"`, a table
    # column headed 토큰, "비밀번호는 …"
    Rule(
        "secret",
        re.compile(
            r"(?<![A-Za-z0-9!#$%&*+\-./?@^_~|])[A-Za-z0-9!#$%&*+\-./?@^_~|]{8,200}=*"
            r"(?![A-Za-z0-9!#$%&*+\-./=?@^_~|])"
        ),
        _secret_token,
        scope="secret_cue",
    ),
    Rule(
        "email",
        re.compile(
            r"(?<![A-Za-z0-9._%+/-])[A-Za-z0-9가-힣][A-Za-z0-9가-힣._%+-]*@"
            r"(?:[A-Za-z0-9가-힣](?:[A-Za-z0-9가-힣-]*[A-Za-z0-9가-힣])?\.)+"
            r"(?:[A-Za-z]{2,24}(?![A-Za-z0-9_-])|한국)"
        ),
        scope="at",
    ),
    Rule(
        "rrn",
        re.compile(
            _L + r"\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?P<sep>" + _SEP + r"| )?[1-8]\d{6}" + _R
        ),
        _resident,
        scope="digits",
    ),
    Rule(
        "card",
        re.compile(
            _L + r"(?:\d{4}(?P<s>[- ])\d{4}(?P=s)\d{4}(?P=s)\d{4}(?:(?P=s)\d{1,3})?"
            r"|\d{4}(?P<t>[- ])\d{6}(?P=t)\d{4,5}|\d{13,19})" + _R
        ),
        _card,
        scope="digits",
    ),
    Rule("brn", re.compile(_L + r"(?:\d{3}[-– ]\d{2}[-– ]\d{5}|\d{10})" + _R), _brn, scope="digits"),
    # +82 with or without the trunk 0; mobile 010 and legacy 011/016-019; landline 02, 031-064, 070, 050x
    Rule(
        "phone",
        re.compile(
            r"(?<![0-9A-Za-z_+])(?<![A-Za-z]-)"
            r"(?:\+\s?82[-. ]?(?:\(0\)\s?)?0?(?:1[016789]|2|[3-6][1-5]|70)[-. ]?\d{3,4}[-. ]?\d{4}"
            r"|01[016789][-. ]?\d{3,4}[-. ]?\d{4}"
            r"|\(0(?:2|[3-6][1-5]|70|50\d)\)\s?\d{3,4}[-. ]\d{4}"
            r"|0(?:2|[3-6][1-5]|70|50\d)(?:[-. )]\s?)\d{3,4}[-. ]\d{4})" + _R
        ),
        _phone,
        scope="digits",
    ),
    Rule("phone", re.compile(_L + r"0(?:2|[3-6][1-5]|70)\d{7,8}" + _R), _needs_cue("phone"), scope="digits"),
    Rule(
        "driver_license",
        re.compile(_L + r"(?:1[1-9]|2[0-68])(?:-\d\d-\d{6}-\d\d| \d\d \d{6} \d\d|\d{10})" + _R),
        _driver,
        scope="digits",
    ),
    Rule(
        "driver_license",
        re.compile(
            r"(?:서울|부산|경기(?:남부|북부)?|강원|충북|충남|전북|전남|"
            r"경북|경남|제주|대구|인천|광주|대전|울산|세종)"
            r"[ -]?\d\d-\d{6}-\d\d" + _R
        ),
        scope="digits",
    ),
    Rule(
        "bank_account", re.compile(_L + r"\d{2,6}(?:-\d{2,7}){1,2}(?:-\d{1,7})?" + _R), _bank, scope="digits"
    ),
    Rule(
        "bank_account", re.compile(_L + r"\d{3,6}(?: \d{2,7}){1,2}(?: \d{1,7})?" + _R), _bank, scope="digits"
    ),
    Rule("bank_account", re.compile(_L + r"\d{10,14}" + _R), _bare_account, scope="digits"),
    # series M (multiple), S (single), R (residence), G (official), D (diplomatic), O; 8 digits, or since
    # Dec 2021 3 digits + a letter + 4 digits
    Rule(
        "passport",
        re.compile(r"[MSRGDO](?<![0-9A-Za-z][MSRGDO])(?:\d{8}|\d{3}[A-Z]\d{4})(?![0-9A-Za-z])"),
        scope="digit_clusters",
    ),
    Rule(
        "ip",
        re.compile(r"(?<![0-9A-Za-z.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![0-9A-Za-z]|\.\d)"),
        _ip,
        scope="digits",
    ),
    Rule(
        "ip",
        re.compile(
            r"[0-9A-Fa-f:](?<![0-9A-Za-z_:][0-9A-Fa-f:])[0-9A-Fa-f]{0,3}:?"
            r"(?:[0-9A-Fa-f]{0,4}:){2,6}[0-9A-Fa-f]{1,4}(?![0-9A-Za-z_:])"
        ),
        _ip,
        scope="colons",
    ),
)


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    kind: str


# Every digit-rule match holds 9+ digits with at most 3 separator characters between two of them
# (010 1234 5678, (02) 123-4567, 900101 - 1234567), or is a dotted quad; one scan finds those runs.
_DIGIT_RUN = re.compile(r"\d(?<!\d\d)(?:\d{0,2}[-–—.() ]{0,3}\d){3,}")  # from a run's first digit only


def any_case_word(words: tuple[str, ...]) -> re.Pattern[str]:
    """`(?i)word|…` (at a word start or a camelCase capital) for words of two or more characters, written to
    lead with a case-sensitive class of the words' first letters: re scans fast for a leading class, but
    tries a case-insensitive alternation at every position (~10x slower). Behind the class, one branch per
    (first, second) letter pair opens with a case-sensitive class of the second letter's case variants: re
    rejects such a branch on one character comparison, where a branch opening with a lookbehind or a
    case-insensitive letter costs a full attempt (1.4x less CPU for the whole scan on the data stage
    benchmark). Within a pair the words keep their order, longest first, so the same word matches."""
    first = "".join(sorted({c for w in words for c in (w[0].lower(), w[0].upper())}))
    groups: dict[tuple[str, str], list[str]] = {}
    for w in sorted(words, key=len, reverse=True):
        groups.setdefault((w[0].lower(), w[1].lower()), []).append(re.escape(w[2:]))
    branches = "|".join(
        f"[{re.escape(case_variants(second))}](?<=[{re.escape(c + c.upper())}].)(?i:{'|'.join(tails)})"
        for (c, second), tails in groups.items()
    )
    # a lowercase first letter must start a word (the s in "class" does not); camelCase capitals may not
    return re.compile(f"[{re.escape(first)}](?<![a-z][a-z])(?:{branches})")


def case_variants(char: str) -> str:
    """Every character that `(?i)char` matches (`k` also matches the Kelvin sign, `s` the long s), found by
    re itself so that the case-sensitive class means exactly what the case-insensitive letter did."""
    return "".join(re.findall(f"(?i){re.escape(char)}", all_characters()))


@cache
def secret_cue() -> re.Pattern[str]:
    """A secret's name (password, token, 비밀번호, …); built on first use (~0.1 s: case_variants)."""
    return any_case_word(SECRET_WORDS)


IPV6_MAX = 39
"""The longest text the IPv6 rule matches (eight groups of four hex digits and seven colons)."""
_IPV6_TAIL = re.compile(r":(?:[0-9A-Fa-f]{0,4}:){1,5}[0-9A-Fa-f]{1,4}(?![0-9A-Za-z_:])")
"""What every IPv6 rule match ends with: from its first group's colon, the further groups and the last one,
up to the end of the run of hex digits and colons (`std::vector`, `a::b` end none: a letter follows)."""

Window = tuple[int, int, int, int]
"""(pos, endpos) scanned, and (lo, hi): a match must end after lo and start before hi."""


@cache
def _digit_table() -> np.ndarray:
    """True at each code point that regex `\\d` matches, the last entry (every code point above) False: all
    660 are below 0x20000, so the table stays small enough to look up fast."""
    digits = codepoints("".join(re.findall(r"\d", all_characters())))
    table = np.zeros(int(digits.max()) + 2, dtype=bool)
    table[digits] = True
    return table


def digit_windows(text: str) -> dict[str, list[Window]]:
    return digit_windows_batch([text])[0]


def digit_windows_batch(texts: list[str]) -> list[dict[str, list[Window]]]:
    """The windows of the digit scopes of each text: "digits", around each digit run that can hold PII, with
    room for a region name or `+`/`(` before it (서울 19-…) and the two characters the boundary checks read
    after it; "digit_clusters", each cluster of 7+ digits with the character before and after it (a
    passport number, 8 digits or 3 + a letter + 4, lies in one).

    A regex scan that opens on `\\d` or on a letter before digits costs ~10 ns a character; numpy finds the
    digits of the whole batch at a fraction of that, and the regexes run only on their clusters (digits at
    most 4 apart): two digits of one match are never further apart, so a cluster holds every match that
    starts in it, and the scan finds the same matches as one over the whole text."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    cp = codepoints("".join(texts))
    table = _digit_table()
    digits = np.flatnonzero(table.take(cp.astype(np.intp), mode="clip"))  # above: the last entry; ~1.4x min
    windows: list[dict[str, list[Window]]] = [{"digits": [], "digit_clusters": []} for _ in texts]
    if not len(digits):
        return windows
    doc = np.searchsorted(bounds, digits, side="right") - 1
    new = np.ones(len(digits), dtype=bool)
    new[1:] = (np.diff(digits) > 4) | (doc[1:] != doc[:-1])
    first = np.flatnonzero(new)
    last = np.append(first[1:], len(digits)) - 1
    dots = np.flatnonzero(cp == ord("."))
    n_dots = np.searchsorted(dots, digits[last]) - np.searchsorted(dots, digits[first])
    n_digits = last - first + 1
    runs = (n_digits >= 9) | ((n_digits >= 4) & (n_dots >= 3))  # only these hold a run that counts (below)
    keep = runs | (n_digits >= 7)
    cluster = zip(
        doc[first][keep].tolist(),
        (digits[first] - bounds[doc[first]])[keep].tolist(),
        (digits[last] - bounds[doc[first]] + 1)[keep].tolist(),
        runs[keep].tolist(),
        (n_digits >= 7)[keep].tolist(),
    )
    for i, start, end, has_runs, seven in cluster:
        if has_runs:
            windows[i]["digits"] += _run_windows(texts[i], start, end)
        if seven:
            pos, endpos = max(0, start - 1), min(len(texts[i]), end + 1)
            windows[i]["digit_clusters"].append((pos, endpos, pos, endpos))
    return windows


def _run_windows(text: str, pos: int, endpos: int) -> list[Window]:
    """Windows of the digit runs in text[pos:endpos] holding 9+ digits or 3+ dots (a dotted quad)."""
    windows = []
    for m in _DIGIT_RUN.finditer(text, pos, endpos):
        run = m.group(0)
        if sum(map(str.isdigit, run)) < 9 and run.count(".") < 3:
            continue
        start, end = max(0, m.start() - 6), min(len(text), m.end() + 2)
        windows.append((start, end, start, end))
    return windows


@cache
def _ascii_secret_words() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The ASCII secret names as (gate, words): the words sharing their first three letters under their
    common prefix (`pass` for password, passwd, passphrase), so that one scan of text without it skips them."""
    groups: dict[str, list[str]] = {}
    for word in SECRET_WORDS:
        if word.isascii():
            groups.setdefault(word[:3], []).append(word)
    return tuple((os.path.commonprefix(words), tuple(words)) for words in groups.values())


def _ascii_cue_starts(lowered: str) -> list[int]:
    """Every position where an ASCII secret name occurs in `lowered` (a lowercased ASCII text), sorted."""
    starts: set[int] = set()
    for gate, words in _ascii_secret_words():
        i = lowered.find(gate)
        while i >= 0:
            starts.update(i for word in words if lowered.startswith(word, i))
            i = lowered.find(gate, i + 1)
    return sorted(starts)


def secret_cue_matches(text: str) -> list[re.Match[str]]:
    """What `secret_cue().finditer(text)` yields. In ASCII text, which is most code and English, a match of a
    name is that name in `text.lower()` (an ASCII letter matches `(?i)` exactly its two cases; the Korean
    names hold Hangul), so the pattern is tried only where `str.find` sees a name, in the order and from the
    end of the last match as finditer would: ~0.1 s instead of ~1.2 s of scanning on the data stage
    benchmark, where the names' first letters (a, b, c, p, s, t) open an attempt at every fifth character."""
    if not text.isascii():
        return list(secret_cue().finditer(text))
    matches: list[re.Match[str]] = []
    end = 0
    for start in _ascii_cue_starts(text.lower()):
        if start >= end and (m := secret_cue().match(text, start)):
            matches.append(m)
            end = m.end()
    return matches


def secret_cue_windows(text: str) -> list[Window]:
    """Around each secret's name: tokens starting within CUE_BEFORE after it or ending within CUE_AFTER before
    it (`value="…"> <!-- password -->`); the scan reaches 200 further so that no token is cut."""
    return [
        (
            max(0, m.start() - CUE_AFTER - 200),
            min(len(text), m.end() + CUE_BEFORE + 200),
            m.start() - CUE_AFTER,
            m.end() + CUE_BEFORE,
        )
        for m in secret_cue_matches(text)
    ]


def char_windows(text: str, char: str, before: int, after: int) -> list[Window]:
    """Around each `char` (an e-mail's @): a match must contain it."""
    windows, i = [], text.find(char)
    while i >= 0:
        windows.append((max(0, i - before), min(len(text), i + after), i, i + 1))
        i = text.find(char, i + 1)
    return windows


_ADDRESS_AT = re.compile(r"[A-Za-z0-9가-힣._%+-]@[A-Za-z0-9가-힣]")
"""An @ between what can end an e-mail address's local part and start its domain (see the e-mail rule)."""


def at_windows(text: str) -> list[Window]:
    """char_windows(text, "@", 64, 256) less the windows of an @ that no address can hold: a match in a
    window must contain its @, so one right after a space or before a quote (`@property`, `"@"`) yields
    nothing there, and its regex scan of 320 characters (most @ in code) is skipped."""
    return [w for w in char_windows(text, "@", 64, 256) if w[2] > 0 and _ADDRESS_AT.match(text, w[2] - 1)]


def colon_windows(text: str) -> list[Window]:
    """Around each run of hex digits and colons that ends like an IPv6 address (_IPV6_TAIL). The rule's
    boundaries make each of its matches a whole such run, at most IPV6_MAX characters long, so a window
    reaching IPV6_MAX back from the run's end (the lookbehind still sees the character before `pos`) finds
    the same matches as a scan of the whole text, without scanning every line of a code file with a `::`."""
    windows: list[Window] = []
    if ":" not in text:  # every tail opens with one; memchr is ~10x cheaper than the scan on Korean text
        return windows
    end = 0
    for tail in _IPV6_TAIL.finditer(text):
        pos, end = max(end, tail.end() - IPV6_MAX), tail.end()  # not back into the last run: found once
        windows.append((pos, end, pos, end))
    return windows


def _matches(rule: Rule, text: str, windows: dict[str, list[Window]]):
    """Matches of the rule in its scope; a windowed match must start before `hi` and end after `lo`."""
    if rule.scope == "text":
        yield from rule.pattern.finditer(text)
        return
    for pos, endpos, lo, hi in windows[rule.scope]:
        for m in rule.pattern.finditer(text, pos, endpos):
            if m.start() < hi and m.end() > lo:
                yield m


@cache
def active_rules(types: tuple[str, ...]) -> tuple[tuple[Rule, tuple[tuple[str, tuple[str, ...]], ...]], ...]:
    """The rules that may produce one of `types` (the rrn rule also finds frn), in priority order, each with
    its gated needs: worked out once, not per document."""
    return tuple(
        (rule, gated(rule.needs))
        for rule in RULES
        if rule.kind in types or (rule.kind == "rrn" and "frn" in types)
    )


def find(
    text: str, types: tuple[str, ...] = PII_TYPES, digits: dict[str, list[Window]] | None = None
) -> list[Found]:
    """PII spans in `text`, sorted, never overlapping; an earlier rule's span wins over a later one's.
    `digits`: the text's digit_windows (its digit scopes), when a batch has them."""
    found: list[Found] = []  # sorted by start; never overlapping, so sorted by end too
    starts: list[int] = []
    windows = {
        **(digit_windows(text) if digits is None else digits),
        "secret_cue": secret_cue_windows(text),
        "at": at_windows(text),
        "colons": colon_windows(text),
    }
    for rule, gates in active_rules(types):
        if rule.scope != "text" and not windows[rule.scope]:
            continue  # most documents have no window of most scopes: no generator set up for nothing
        if gates and not holds_gated(text, gates):
            continue
        for m in _matches(rule, text, windows):
            start, end = m.span("value") if "value" in rule.pattern.groupindex else m.span()
            i = bisect.bisect_right(starts, start)  # a log of 10,000 IPs stays linear-ish, not quadratic
            if (i > 0 and found[i - 1].end > start) or (i < len(found) and found[i].start < end):
                continue  # taken by an earlier type: no need to validate
            kind = rule.valid(text, m) if rule.valid is not None else rule.kind
            if kind is not None and kind in types:
                starts.insert(i, start)
                found.insert(i, Found(start, end, kind))
    return found


def scrub(
    text: str, types: tuple[str, ...] = PII_TYPES, digits: dict[str, list[Window]] | None = None
) -> tuple[str, Counter[str]]:
    """Text with each PII span replaced by `<TYPE>`, and the number replaced per type (`digits`: see find)."""
    spans = find(text, types, digits)
    if not spans:
        return text, Counter()
    parts, pos = [], 0
    for f in spans:
        parts += [text[pos : f.start], f"<{f.kind.upper()}>"]
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts), Counter(f.kind for f in spans)


def scrub_batch(texts: list[str], types: tuple[str, ...] = PII_TYPES) -> list[tuple[str, Counter[str]]]:
    """scrub() of each text, the digit windows of all found in one numpy pass (digit_windows_batch)."""
    return [scrub(text, types, digits) for text, digits in zip(texts, digit_windows_batch(texts))]


class PiiScrubber(GeckoStep):
    """Replaces PII by typed placeholders; metadata["pii"] counts them per type. Never drops a document."""

    name = "🔒 gecko pii"
    type = "✂️ - FORMAT"
    step = "pii"

    def __init__(self, types: tuple[str, ...] = PII_TYPES) -> None:
        unknown = sorted(set(types) - set(PII_TYPES))
        if unknown:  # a misspelt type would silently leave that PII in the corpus
            raise ConfigError(f"data.pii.types: unknown {unknown}; known types are {list(PII_TYPES)}")
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
