"""PII scrubbing into typed placeholders (<PHONE>, <RRN>, …), with counts per type in the metadata.

A false positive damages good text (a date, an ISBN, a parcel number), a miss leaks a person, so each type
is recognised by its *published format and validation rule*, and a shape too generic to stand alone (ten
bare digits, a spaced licence number) is taken only right after a word naming its type (계좌, account,
사업자번호, 면허 …). "Right after" means the nearest cue word within a few dozen characters before the value
(across a table header or JSON key), so a tracking number under "운송장번호" next to an account is not an
account. docs/cleaning.md lists each type's rule, an example and its precision/recall on a planted set
generated apart from these rules (bench/pii_gen.py, bench/pii_eval.py).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from datatrove.data import Document

from gecko.data.filters.base import GeckoStep

PII_TYPES = ("secret", "email", "rrn", "frn", "card", "brn", "phone", "driver_license", "bank_account",
             "passport", "ip")
"""Also the order of priority: a span taken by an earlier type is never matched again by a later one."""

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
    "rrn": ("주민등록", "주민번호", "주민 번호", "resident registration", "resident no", "resident_no", "rrn",
            "jumin"),
    "frn": ("외국인등록", "외국인 등록", "alien registration", "alien reg", "alien_reg", "arc no", "frn"),
    "brn": ("사업자", "business registration", "business no", "business_n", "biz_no", "biz no", "brn"),
    "driver_license": ("운전면허", "면허번호", "면허 번호", "driver", "licence", "license"),
    "passport": ("여권", "passport"),
    "bank_account": ("계좌", "통장", "입금", "송금", "이체", "예금주", "은행", "뱅크", "농협", "수협", "신협",
                     "새마을금고", "우체국", "account", "acct", "bank", "deposit", "a/c", "iban", "kb", "nh",
                     "ibk", "sc"),
    "phone": ("전화", "연락처", "휴대폰", "핸드폰", "휴대전화", "팩스", "phone", "mobile", "tel", "fax", "call"),
    "card": ("카드", "card"),
    # look-alikes: a number under one of these words is not a person's
    "other": ("운송장", "송장", "택배", "tracking", "waybill", "주문", "order", "invoice", "승인번호", "isbn",
              "우편", "zip", "postal", "모델", "품번", "part no", "sku", "serial", "시리얼", "버전", "version"),
}
_CUE_KIND = {word: kind for kind, words in CUES.items() for word in words}
# ASCII cue words must start a word ("tel" not in "hotel", "sc" not in "disc"); Korean ones attach to particles
_CUE_RE = re.compile("|".join(
    (rf"(?<![a-z]){re.escape(w)}" if w.isascii() else re.escape(w))
    for w in sorted(_CUE_KIND, key=len, reverse=True)))
CUE_WINDOW = 48
"""Characters before a value searched for its cue word: reaches over a table header row or a JSON key."""


def cue_before(text: str, start: int) -> str | None:
    """The type named by the nearest cue word ending within CUE_WINDOW characters before `start`."""
    window = text[max(0, start - CUE_WINDOW):start].lower()
    last = None
    for last in _CUE_RE.finditer(window):
        pass
    return _CUE_KIND[last.group(0)] if last else None


# ---- rules ------------------------------------------------------------------------------------------------

_L = r"(?<![0-9A-Za-z_])(?<![0-9][.\-])"  # not inside a longer token or number chain (Hangul may touch)
_R = r"(?![0-9A-Za-z_])(?![.\-][0-9])"
_SEP = r"(?:\s?[-–—]\s?)"  # hyphen or dash, optionally spaced

Validator = Callable[[str, re.Match], str | None]
"""(text, match) → the type to record, or None to keep the text."""


@dataclass(frozen=True)
class Rule:
    kind: str
    """The type this rule may produce (a validator may refine rrn → frn); selects the rule in `types`."""
    pattern: re.Pattern[str]
    valid: Validator | None = None
    group: str | int = 0
    """The part replaced (a key or cue word matched before it stays)."""
    needs: str | None = None
    """A substring (lowercased text) without which the rule cannot match: skips the regex cheaply."""


def _digits(m: re.Match, group: str | int = 0) -> str:
    return re.sub(r"\D", "", m.group(group))


def _resident(text: str, m: re.Match) -> str | None:
    """YYMMDD + a gender/century digit + 6. Since Oct 2020 the last six digits are random (no region, no check
    digit), so a separated number with a real date is taken as is; an unseparated 13-digit run must also pass
    the old check digit, be a post-2020 birth, or follow a cue word."""
    d = _digits(m)
    g, yy = int(d[6]), int(d[:2])
    if g in (3, 4, 7, 8) and yy > 30:  # born in the 2000s: a later year is not a birth date yet
        return None
    foreign = g in (5, 6, 7, 8)
    kind = "frn" if foreign else "rrn"
    if m.group("sep") or (frn_check_ok(d) if foreign else rrn_check_ok(d)) or (g in (3, 4, 7, 8) and yy >= 20):
        return kind
    return kind if cue_before(text, m.start()) in ("rrn", "frn") else None


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
    return "brn" if m.group(0)[3:4] in "-–" or cue_before(text, m.start()) == "brn" else None


def _needs_cue(kind: str) -> Validator:
    return lambda text, m: kind if cue_before(text, m.start()) == kind else None


def _driver(text: str, m: re.Match) -> str | None:
    """Region (2 digits, or its name on licences before 2011) - year - serial - check: hyphenated forms stand
    alone, spaced or bare digits need a cue."""
    hyphenated = m.group(0).count("-") >= 2
    return "driver_license" if hyphenated or cue_before(text, m.start()) == "driver_license" else None


def _passport(text: str, m: re.Match) -> str | None:
    """M (multiple), S (single), R (residence) series stand alone; G/D/O (official, diplomatic) need a cue."""
    return "passport" if m.group(0)[0] in "MSR" or cue_before(text, m.start()) == "passport" else None


BANK_LAYOUTS = {(6, 2, 6), (3, 2, 4, 3), (3, 3, 6), (3, 2, 6), (4, 3, 6), (3, 4, 4, 2), (4, 2, 7), (3, 6, 5),
                (3, 6, 2, 3), (3, 6, 3), (3, 2, 6, 1), (4, 4, 5), (3, 3, 5)}
"""Printed layouts of the major banks' accounts (KB 6-2-6 and 3-2-4-3, Shinhan 3-3-6 / 3-2-6, Woori 4-3-6,
NH 3-4-4-2 / 6-2-6, Kakao and MG 4-2-7, Hana 3-6-5, IBK 3-6-2-3, Citi 3-6-3, DGB 3-2-6-1, …); none is the
shape of a phone, date, ISBN, card or postcode, so they stand alone. Toss Bank's 4-4-4 does only with its
1000 prefix, since parcel numbers are printed 4-4-4 too."""


def _bank(text: str, m: re.Match) -> str | None:
    value = m.group(0)
    layout = tuple(len(g) for g in re.split(r"[- ]", value))
    cue = cue_before(text, m.start())
    if cue == "bank_account" and 10 <= sum(layout) <= 14:
        return "bank_account"
    if "-" in value and cue in (None, "bank_account") and (
            layout in BANK_LAYOUTS or (layout == (4, 4, 4) and value.startswith("100"))):
        return "bank_account"
    return None


def _ip(text: str, m: re.Match) -> str | None:
    try:
        addr = ipaddress.ip_address(m.group(0))
    except ValueError:
        return None
    return "ip" if addr.is_global and not addr.is_multicast else None


_SECRET_KEY = (r"[A-Za-z_-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
               r"private[_-]?key|credential)[A-Za-z_]*|비밀번호|패스워드|토큰|api\s?키|시크릿|인증키")


def _secret_value(text: str, m: re.Match) -> str | None:
    """A value assigned to a secret-named key looks random: 8+ characters of at least two classes (lower,
    upper, digit, symbol), and is not a reference like `os.environ`, `${VAR}` or `self.password`."""
    v = m.group("value")
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\$\{?.*|<.*|%.*", v):
        return None
    classes = sum(bool(re.search(p, v)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    if classes < 2 or (classes == 2 and len(v) < 16 and not re.search(r"[0-9]", v)):
        return None
    return "secret"


RULES: tuple[Rule, ...] = (
    Rule("secret", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*"
                              r"PRIVATE KEY-----"), needs="private key-----"),
    Rule("secret", re.compile(
        r"(?<![A-Za-z0-9])(?:(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|gh[pousr]_[A-Za-z0-9]{36,}"
        r"|github_pat_[A-Za-z0-9_]{40,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk-(?:proj-)?[A-Za-z0-9_-]{32,}"
        r"|[sr]k_live_[0-9A-Za-z]{24,}|glpat-[0-9A-Za-z_-]{20}|hf_[A-Za-z]{30,}"
        r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})")),
    Rule("secret", re.compile(
        rf"(?i:{_SECRET_KEY})[\"']?(?:\s*[:=]\s*|\s+is\s+|(?:은|는|이|가|:)\s*)[\"'`]?"
        r"(?P<value>[A-Za-z0-9!#$%&*+\-./=?@^_~|]{8,200})"), _secret_value, "value"),
    Rule("email", re.compile(
        r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9가-힣][A-Za-z0-9가-힣._%+-]*@(?:[A-Za-z0-9가-힣](?:[A-Za-z0-9가-힣-]*"
        r"[A-Za-z0-9가-힣])?\.)+(?:[A-Za-z]{2,24}(?![A-Za-z0-9_-])|한국)"), needs="@"),
    Rule("rrn", re.compile(_L + r"\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?P<sep>" + _SEP + r"| )?[1-8]\d{6}"
                           + _R), _resident),
    Rule("card", re.compile(_L + r"(?:\d{4}(?P<s>[- ])\d{4}(?P=s)\d{4}(?P=s)\d{4}(?:(?P=s)\d{1,3})?"
                                 r"|\d{4}(?P<t>[- ])\d{6}(?P=t)\d{4,5}|\d{13,19})" + _R), _card),
    Rule("brn", re.compile(_L + r"(?:\d{3}[-–]\d{2}[-–]\d{5}|\d{10})" + _R), _brn),
    # +82 with or without the trunk 0; mobile 010 and legacy 011/016-019; landline 02, 031-064, 070, 050x
    Rule("phone", re.compile(
        r"(?<![0-9A-Za-z_+])(?:\+\s?82[-. ]?(?:\(0\)\s?)?0?(?:1[016789]|2|[3-6][1-5]|70)[-. ]?\d{3,4}[-. ]?\d{4}"
        r"|01[016789][-. ]?\d{3,4}[-. ]?\d{4}"
        r"|\(0(?:2|[3-6][1-5]|70|50\d)\)\s?\d{3,4}[-. ]\d{4}"
        r"|0(?:2|[3-6][1-5]|70|50\d)(?:[-. )]\s?)\d{3,4}[-. ]\d{4})" + _R)),
    Rule("phone", re.compile(_L + r"0(?:2|[3-6][1-5]|70)\d{7,8}" + _R), _needs_cue("phone")),
    Rule("driver_license", re.compile(_L + r"(?:1[1-9]|2[0-68])(?:-\d\d-\d{6}-\d\d| \d\d \d{6} \d\d|\d{10})"
                                      + _R), _driver),
    Rule("driver_license", re.compile(r"(?:서울|부산|경기(?:남부|북부)?|강원|충북|충남|전북|전남|경북|경남|제주|"
                                      r"대구|인천|광주|대전|울산|세종)[ -]?\d\d-\d{6}-\d\d" + _R)),
    Rule("bank_account", re.compile(_L + r"\d{2,6}(?:-\d{2,7}){1,3}" + _R), _bank),
    Rule("bank_account", re.compile(_L + r"\d{3,6}(?: \d{2,7}){1,3}" + _R), _bank),
    Rule("bank_account", re.compile(_L + r"\d{10,14}" + _R), _needs_cue("bank_account")),
    Rule("passport", re.compile(r"(?<![0-9A-Za-z])[MSRGDO](?:\d{8}|\d{3}[A-Z]\d{4})(?![0-9A-Za-z])"), _passport),
    Rule("ip", re.compile(r"(?<![0-9A-Za-z.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![0-9A-Za-z]|\.\d)"), _ip),
    Rule("ip", re.compile(r"(?<![0-9A-Za-z_:])[0-9A-Fa-f]{0,4}:(?:[0-9A-Fa-f]{0,4}:){2,6}[0-9A-Fa-f]{1,4}"
                          r"(?![0-9A-Za-z_:])"), _ip, needs=":"),
)


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    kind: str


def find(text: str, types: tuple[str, ...] = PII_TYPES) -> list[Found]:
    """PII spans in `text`, sorted, never overlapping; an earlier rule's span wins over a later one's."""
    found: list[Found] = []
    lower = text.lower() if any(rule.needs for rule in RULES) else text
    for rule in RULES:
        if rule.kind not in types and not (rule.kind == "rrn" and "frn" in types):
            continue
        if rule.needs is not None and rule.needs not in lower:
            continue
        for m in rule.pattern.finditer(text):
            kind = rule.valid(text, m) if rule.valid is not None else rule.kind
            if kind is None or kind not in types:
                continue
            start, end = m.span(rule.group)
            if not any(f.start < end and start < f.end for f in found):
                found.append(Found(start, end, kind))
    return sorted(found, key=lambda f: f.start)


def scrub(text: str, types: tuple[str, ...] = PII_TYPES) -> tuple[str, Counter[str]]:
    """Text with each PII span replaced by `<TYPE>`, and the number replaced per type."""
    spans = find(text, types)
    if not spans:
        return text, Counter()
    parts, pos = [], 0
    for f in spans:
        parts += [text[pos:f.start], f"<{f.kind.upper()}>"]
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts), Counter(f.kind for f in spans)


def scrub_batch(texts: list[str], types: tuple[str, ...] = PII_TYPES) -> list[tuple[str, Counter[str]]]:
    return [scrub(text, types) for text in texts]


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
