"""Planted-PII evaluation set, written from public format specifications only.

This generator was written *before* the scrubber's rules were read or changed, and it must stay
independent of them: every value below comes from a published format (resident-registration
check digit, NTS business-number checksum, card IIN ranges and Luhn, KNPA licence region codes,
MOFA passport series, banks' printed account layouts, KISA numbering plan), never from what
`gecko.data.steps.pii` happens to match. Look-alikes (dates, ISBNs, tracking numbers, ...) are planted
the same way and must survive scrubbing.

Each case is real carrier text from ../shared/data with one to three rendered snippets inserted.
Snippets come from template *families* (Korean prose, English prose, table rows, JSON fields,
code/config, and a held-out markup/chat/signature family), each with and without cue words.
The ``heldout`` split uses only the held-out family and carrier sources never used in ``tune``,
so its number measures generalization, not fit.

    python bench/pii_gen.py --out /tmp/pii_cases.jsonl [--per-split 2500] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import string
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

PII_TYPES = ("rrn", "frn", "brn", "driver", "passport", "bank", "card", "phone", "email", "ip",
             "secret")
LOOKALIKE_TYPES = ("date", "time", "isbn", "postcode", "tracking", "money", "law", "version",
                   "coordinate", "product_code", "private_ip", "order_no")


@dataclass
class Span:
    start: int
    end: int
    label: str  # "pii", "lookalike", or "carrier" (real text, unlabelled: may hold real PII)
    kind: str  # one of PII_TYPES / LOOKALIKE_TYPES
    variant: str
    cue: bool


@dataclass
class Case:
    id: str
    split: str
    family: str
    source: str
    text: str
    spans: list[Span] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Values (public specs)
# ---------------------------------------------------------------------------------------------

def digits(rng: random.Random, n: int, first: str = "0123456789") -> str:
    return rng.choice(first) + "".join(rng.choice(string.digits) for _ in range(n - 1))


def birth_date(rng: random.Random, lo: int, hi: int) -> tuple[int, str]:
    year = rng.randint(lo, hi)
    month = rng.randint(1, 12)
    day = rng.randint(1, 28 if month == 2 else 30)
    return year, f"{year % 100:02d}{month:02d}{day:02d}"


RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)


def rrn_check(d12: str) -> int:
    """MOIS resident-registration check digit (used for numbers issued before Oct 2020)."""
    s = sum(w * int(c) for w, c in zip(RRN_WEIGHTS, d12))
    return (11 - s % 11) % 10


def frn_check(d12: str) -> int:
    """Legacy foreigner-registration check digit (the published validation routine)."""
    s = sum(w * int(c) for w, c in zip(RRN_WEIGHTS, d12))
    c = 11 - s % 11
    c = c - 10 if c >= 10 else c
    c += 2
    return c - 10 if c >= 10 else c


def gender_digit(rng: random.Random, year: int, foreign: bool) -> str:
    base = {1800: "90", 1900: "12", 2000: "34"}[year // 100 * 100]
    if foreign:
        base = {1900: "56", 2000: "78"}.get(year // 100 * 100, "56")
    return rng.choice(base)


def id_number(rng: random.Random, foreign: bool) -> tuple[str, str]:
    """13 digits: YYMMDD + gender/century + 6. Before Oct 2020 the tail encoded region and a check
    digit; since then it is random (the check digit no longer holds)."""
    post = rng.random() < 0.45
    if post:
        year, ymd = birth_date(rng, 2020, 2025) if rng.random() < 0.6 else birth_date(rng, 1940, 2019)
        g = gender_digit(rng, year, foreign)
        tail = digits(rng, 5)
        good = (frn_check if foreign else rrn_check)(ymd + g + tail)
        last = str((good + rng.randint(1, 9)) % 10)  # prove the rule does not demand a check digit
        return ymd + g + tail + last, "post2020"
    year, ymd = birth_date(rng, 1935, 2019)
    g = gender_digit(rng, year, foreign)
    if foreign:
        org = f"{rng.randrange(0, 100, 2):02d}"
        tail = org + digits(rng, 2) + rng.choice("6789")
        return ymd + g + tail + str(frn_check(ymd + g + tail)), "pre2020"
    tail = digits(rng, 5)
    return ymd + g + tail + str(rrn_check(ymd + g + tail)), "pre2020"


def fmt_id(rng: random.Random, d: str, cue: bool) -> tuple[str, str]:
    seps = ["-"] * 7 + [" ", "–"] + ([""] * 3)
    sep = rng.choice(seps)
    return d[:6] + sep + d[6:], "nosep" if sep == "" else "sep"


def brn(rng: random.Random, cue: bool) -> tuple[str, str]:
    """NTS business registration number: office(3) type(2) serial(4) check(1)."""
    d = digits(rng, 3, "123456789") + f"{rng.choice([rng.randint(1, 79), rng.randint(80, 99)]):02d}" + digits(rng, 4)
    w = (1, 3, 7, 1, 3, 7, 1, 3, 5)
    s = sum(a * int(b) for a, b in zip(w, d)) + (int(d[8]) * 5) // 10
    d += str((10 - s % 10) % 10)
    if cue and rng.random() < 0.3:
        return d, "nosep"
    return f"{d[:3]}-{d[3:5]}-{d[5:]}", "sep"


LICENCE_REGIONS = {"11": "서울", "12": "부산", "13": "경기", "14": "강원", "15": "충북",
                   "16": "충남", "17": "전북", "18": "전남", "19": "경북", "20": "경남",
                   "21": "제주", "22": "대구", "23": "인천", "24": "광주", "25": "대전",
                   "26": "울산", "28": "경기북부"}


def driver(rng: random.Random, cue: bool) -> tuple[str, str]:
    """Licence no.: region(2 digits, or its name before 2011) - year(2) - serial(6) - check/reissue(2)."""
    code = rng.choice(sorted(LICENCE_REGIONS))
    yy, serial, tail = f"{rng.randint(0, 99):02d}", digits(rng, 6), digits(rng, 2)
    style = rng.choice(["code", "code", "code", "name", "name", "namejoined", "space", "bare"])
    if style == "bare" and not cue:
        style = "code"
    return {
        "code": f"{code}-{yy}-{serial}-{tail}",
        "name": f"{LICENCE_REGIONS[code]} {yy}-{serial}-{tail}",
        "namejoined": f"{LICENCE_REGIONS[code]}{yy}-{serial}-{tail}",
        "space": f"{code} {yy} {serial} {tail}",
        "bare": f"{code}{yy}{serial}{tail}",
    }[style], style


def passport(rng: random.Random, cue: bool) -> tuple[str, str]:
    """Old: series letter + 8 digits; new (Dec 2021): letter + 3 digits + letter + 4 digits."""
    series = rng.choice("MMMMMSSRGD")
    if rng.random() < 0.5:
        return series + digits(rng, 8), "old"
    return series + digits(rng, 3) + rng.choice(string.ascii_uppercase) + digits(rng, 4), "new"


# bank name (ko), English name, printed group layout, optional fixed leading digits
BANKS = [
    ("국민은행", "KB Kookmin", (6, 2, 6), ""), ("KB국민", "KB", (3, 2, 4, 3), ""),
    ("신한은행", "Shinhan", (3, 3, 6), "110"), ("신한", "Shinhan Bank", (3, 2, 6), ""),
    ("우리은행", "Woori", (4, 3, 6), "1002"), ("농협", "NH Bank", (3, 4, 4, 2), "3"),
    ("NH농협", "Nonghyup", (6, 2, 6), "3"), ("카카오뱅크", "KakaoBank", (4, 2, 7), "3333"),
    ("하나은행", "Hana", (3, 6, 5), ""), ("IBK기업은행", "IBK", (3, 6, 2, 3), ""),
    ("SC제일은행", "SC First", (3, 2, 6), ""), ("케이뱅크", "K bank", (3, 3, 6), "100"),
    ("토스뱅크", "Toss Bank", (4, 4, 4), "100"), ("우체국", "Korea Post", (6, 2, 6), ""),
    ("새마을금고", "MG", (4, 2, 7), "9"), ("부산은행", "Busan Bank", (3, 4, 4, 2), "1"),
    ("대구은행", "DGB", (3, 2, 6, 1), "5"), ("수협", "Suhyup", (3, 2, 6), "1"),
    ("씨티은행", "Citibank Korea", (3, 6, 3), ""), ("신협", "Shinhyup", (3, 3, 6), "13"),
]


def bank(rng: random.Random, cue: bool) -> tuple[str, str]:
    _, _, groups, lead = rng.choice(BANKS)
    d = lead + digits(rng, sum(groups) - len(lead), "123456789" if not lead else string.digits)
    parts, i = [], 0
    for g in groups:
        parts.append(d[i:i + g])
        i += g
    layout = "-".join(map(str, groups))
    if cue and rng.random() < 0.4:
        return d, f"bare:{layout}"
    if cue and rng.random() < 0.15:
        return " ".join(parts), f"space:{layout}"
    return "-".join(parts), f"hyphen:{layout}"


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + digits(rng, length - len(prefix) - 1)
    total = 0
    for i, c in enumerate(reversed(body)):
        n = int(c)
        if i % 2 == 0:
            n = n * 2 - 9 if n * 2 > 9 else n * 2
        total += n
    return body + str((10 - total % 10) % 10)


CARD_BRANDS = [  # brand, IIN prefixes, length, grouping
    ("visa", ["4"], 16, (4, 4, 4, 4)), ("mastercard", ["51", "52", "53", "54", "55"], 16, (4, 4, 4, 4)),
    ("mastercard2", [str(x) for x in range(2221, 2721, 37)], 16, (4, 4, 4, 4)),
    ("amex", ["34", "37"], 15, (4, 6, 5)), ("jcb", [str(x) for x in range(3528, 3590, 7)], 16, (4, 4, 4, 4)),
    ("diners", ["36", "300", "301", "305", "38"], 14, (4, 6, 4)),
    ("unionpay", ["62"], 16, (4, 4, 4, 4)), ("discover", ["6011", "65"], 16, (4, 4, 4, 4)),
    ("domestic", ["94", "9410", "9420", "9430", "9490", "95", "90"], 16, (4, 4, 4, 4)),
]


def card(rng: random.Random, cue: bool) -> tuple[str, str]:
    brand, prefixes, length, groups = rng.choice(CARD_BRANDS)
    d = luhn_complete(rng.choice(prefixes), length, rng)
    sep = rng.choice(["-", "-", " ", " ", ""])
    parts, i = [], 0
    for g in groups:
        parts.append(d[i:i + g])
        i += g
    return sep.join(parts), f"{brand}:{'nosep' if not sep else 'sep'}"


AREA_CODES = ["02", "031", "032", "033", "041", "042", "043", "044", "051", "052", "053", "054",
              "055", "061", "062", "063", "064", "070"]


def phone(rng: random.Random, cue: bool) -> tuple[str, str]:
    kind = rng.choices(["mobile", "legacy", "landline"], [5, 2, 3])[0]
    if kind == "mobile":
        pre, mid = "010", digits(rng, 4, "23456789")
    elif kind == "legacy":
        pre = rng.choice(["011", "016", "017", "018", "019"])
        mid = digits(rng, rng.choice([3, 4]), "23456789")
    else:
        pre, mid = rng.choice(AREA_CODES), digits(rng, rng.choice([3, 4]), "23456789")
    last = digits(rng, 4)
    style = rng.choices(["hyphen", "dot", "space", "bare", "paren", "intl", "intl_bare"],
                        [10, 2, 2, 2, 1, 3, 1])[0]
    if style == "paren" and kind != "landline":
        style = "hyphen"
    if style == "bare" and kind == "landline" and not cue:
        style = "hyphen"
    text = {
        "hyphen": f"{pre}-{mid}-{last}", "dot": f"{pre}.{mid}.{last}", "space": f"{pre} {mid} {last}",
        "bare": f"{pre}{mid}{last}", "paren": f"({pre}) {mid}-{last}",
        "intl": rng.choice(["+82-{p}-{m}-{l}", "+82 {p} {m} {l}", "+82 {p}-{m}-{l}", "+82-{p}-{m}{l}"]).format(
            p=pre[1:], m=mid, l=last),
        "intl_bare": f"+82{pre[1:]}{mid}{last}",
    }[style]
    return text, f"{kind}:{style}"


KO_NAMES = ["홍길동", "김철수", "이영희", "박지민", "최수아", "정우성", "강하늘", "윤서연", "장민호", "한지원"]
ASCII_NAMES = ["minsu.kim", "jhpark", "lee_younghee", "sykang92", "hana+news", "choi.j", "dev-ops",
               "w.jeong", "yoon2024", "s_han"]
DOMAINS = ["naver.com", "daum.net", "hanmail.net", "gmail.com", "kakao.com", "nate.com",
           "snu.ac.kr", "korea.kr", "samsung.com", "company.co.kr", "kaist.ac.kr", "mail.go.kr"]
IDN_DOMAINS = ["한국인터넷진흥원.한국", "회사.한국", "메일.kr"]


def email(rng: random.Random, cue: bool) -> tuple[str, str]:
    r = rng.random()
    if r < 0.25:
        local, variant = rng.choice(KO_NAMES) + rng.choice(["", "", "88", ".dev"]), "hangul_local"
    else:
        local, variant = rng.choice(ASCII_NAMES) + rng.choice(["", "", str(rng.randint(1, 999))]), "ascii"
    domain = rng.choice(IDN_DOMAINS) if rng.random() < 0.1 else rng.choice(DOMAINS)
    return f"{local}@{domain}", variant + (":idn" if not domain.isascii() else "")


def public_ipv4(rng: random.Random) -> str:
    while True:
        a = rng.randint(1, 223)
        b = rng.randint(0, 255)
        if a in (10, 127, 0) or (a == 172 and 16 <= b <= 31) or (a == 192 and b == 168) or \
                (a == 169 and b == 254) or (a == 100 and 64 <= b <= 127) or a in (192, 198, 203):
            continue  # private, loopback, link-local, CGNAT; skip doc ranges' first octets entirely
        return f"{a}.{b}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def ip(rng: random.Random, cue: bool) -> tuple[str, str]:
    if rng.random() < 0.15:
        groups = [f"{rng.randint(0x2400, 0x2a0f):x}"] + [f"{rng.randint(0, 0xffff):x}" for _ in range(3)]
        tail = [f"{rng.randint(1, 0xffff):x}" for _ in range(rng.choice([1, 2]))]
        return ":".join(groups) + "::" + ":".join(tail), "ipv6"
    return public_ipv4(rng), "ipv4"


B64 = string.ascii_letters + string.digits + "+/"
ALNUM = string.ascii_letters + string.digits


def rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def pem_block(rng: random.Random) -> str:
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY"])
    body = "\n".join(rand(rng, B64, 64) for _ in range(rng.randint(3, 8)))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


def secret(rng: random.Random, cue: bool) -> tuple[str, str]:
    makers: dict[str, Callable[[], str]] = {
        "aws_key_id": lambda: "AKIA" + rand(rng, string.ascii_uppercase + string.digits, 16),
        "github": lambda: rng.choice(["ghp_", "gho_", "ghs_"]) + rand(rng, ALNUM, 36),
        "github_pat": lambda: "github_pat_" + rand(rng, ALNUM, 22) + "_" + rand(rng, ALNUM, 59),
        "slack": lambda: rng.choice(["xoxb-", "xoxp-"]) + digits(rng, 12) + "-" + digits(rng, 12) + "-" + rand(rng, ALNUM, 24),
        "openai": lambda: rng.choice(["sk-", "sk-proj-"]) + rand(rng, ALNUM + "_-", 48),
        "google": lambda: "AIza" + rand(rng, ALNUM + "_-", 35),
        "stripe": lambda: rng.choice(["sk_live_", "rk_live_"]) + rand(rng, ALNUM, 24),
        "hf": lambda: "hf_" + rand(rng, string.ascii_letters, 34),
        "jwt": lambda: "eyJ" + rand(rng, ALNUM + "_-", 30) + ".eyJ" + rand(rng, ALNUM + "_-", 60) + "." + rand(rng, ALNUM + "_-", 43),
        "pem": lambda: pem_block(rng),
    }
    if cue:  # values only recognisable by their key name
        makers["aws_secret"] = lambda: rand(rng, B64, 40)
        makers["password"] = lambda: rand(rng, ALNUM + "!@#$%^&*", rng.randint(10, 20))
        makers["kakao_key"] = lambda: rand(rng, "0123456789abcdef", 32)
    name = rng.choice(sorted(makers))
    return makers[name](), name


PII_MAKERS: dict[str, Callable[[random.Random, bool], tuple[str, str]]] = {
    "rrn": lambda rng, cue: _id_value(rng, cue, foreign=False),
    "frn": lambda rng, cue: _id_value(rng, cue, foreign=True),
    "brn": brn, "driver": driver, "passport": passport, "bank": bank, "card": card,
    "phone": phone, "email": email, "ip": ip, "secret": secret,
}


def _id_value(rng: random.Random, cue: bool, foreign: bool) -> tuple[str, str]:
    d, era = id_number(rng, foreign)
    text, sep = fmt_id(rng, d, cue)
    return text, f"{era}:{sep}"


# ------------------------------- look-alikes ------------------------------------------------

def isbn13(rng: random.Random) -> str:
    d = rng.choice(["97889", "97911"]) + digits(rng, 7)
    s = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(d))
    d += str((10 - s % 10) % 10)
    if rng.random() < 0.5:
        return d
    return f"{d[:3]}-{d[3:5]}-{d[5:9]}-{d[9:12]}-{d[12]}"


def lookalike(rng: random.Random, kind: str) -> tuple[str, str]:
    y, m, d = rng.randint(1950, 2030), rng.randint(1, 12), rng.randint(1, 28)
    hh, mm, ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    options: dict[str, list[str]] = {
        "date": [f"{y}-{m:02d}-{d:02d}", f"{y}.{m:02d}.{d:02d}", f"{y}. {m}. {d}.", f"{y}년 {m}월 {d}일",
                 f"{y % 100:02d}.{m:02d}.{d:02d}", f"{y}{m:02d}{d:02d}", f"{d:02d}/{m:02d}/{y}", f"{y}/{m:02d}/{d:02d}"],
        "time": [f"{hh:02d}:{mm:02d}", f"{hh:02d}:{mm:02d}:{ss:02d}", f"오후 {hh % 12 + 1}시 {mm}분",
                 f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}+09:00", f"{hh:02d}:{mm:02d}~{(hh + 8) % 24:02d}:{mm:02d}"],
        "isbn": [isbn13(rng), f"89-{digits(rng, 4)}-{digits(rng, 3)}-{rng.choice(string.digits + 'X')}"],
        "postcode": [f"{rng.randint(1000, 63644):05d}", f"{digits(rng, 3, '1234567')}-{digits(rng, 3)}"],
        "tracking": [digits(rng, 12, "56"), "6" + digits(rng, 12), digits(rng, 10, "4"),
                     f"{digits(rng, 4, '56')}-{digits(rng, 4)}-{digits(rng, 4)}", digits(rng, 13, "1")],
        "money": [f"{rng.randint(1000, 99999999):,}원",
                  f"₩{rng.randint(1000, 99999999):,}", f"${rng.randint(1, 99999):,}.{rng.randint(0, 99):02d}",
                  f"{rng.randint(1, 99)}억 {rng.randint(1, 9999):,}만 원", f"{rng.randint(10**7, 10**9)}원",
                  f"KRW {rng.randint(10**5, 10**9):,}"],
        "law": [f"제{rng.randint(1, 300)}조 제{rng.randint(1, 9)}항", f"법률 제{rng.randint(10000, 19999)}호",
                f"{rng.randint(1990, 2024)}다{rng.randint(1000, 299999)}", f"{rng.randint(1990, 2024)}도{rng.randint(100, 19999)}",
                f"{rng.randint(2000, 2024)}헌마{rng.randint(100, 1999)}", f"제{rng.randint(1, 99)}조의{rng.randint(2, 5)}",
                f"Article {rng.randint(1, 300)}({rng.randint(1, 9)})"],
        "version": [f"v{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}",
                    f"{rng.randint(1, 3)}.{rng.randint(0, 13)}.{rng.randint(0, 12)}",
                    f"{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}-rc.{rng.randint(1, 4)}",
                    f"10.0.{rng.randint(10000, 22999)}.{rng.randint(1, 4000)}",
                    f"{rng.randint(90, 130)}.0.{rng.randint(4000, 6999)}.{rng.randint(1, 250)}",
                    f"v{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}"],
        "coordinate": [f"{rng.uniform(33, 38.6):.4f}, {rng.uniform(124.5, 131.9):.4f}",
                       f"({rng.uniform(33, 38.6):.6f},{rng.uniform(124.5, 131.9):.6f})",
                       f"N {rng.randint(33, 38)}°{rng.randint(0, 59)}′{rng.randint(0, 59)}″ E {rng.randint(124, 131)}°{rng.randint(0, 59)}′{rng.randint(0, 59)}″",
                       f"lat={rng.uniform(33, 38.6):.6f}&lng={rng.uniform(124.5, 131.9):.6f}"],
        "product_code": [f"{rand(rng, string.ascii_uppercase, 2)}{digits(rng, 3, '0')}-{digits(rng, 4)}-{digits(rng, 4)}",
                         f"{rand(rng, string.ascii_uppercase, 2)}-{digits(rng, 4, '0')}{rand(rng, string.ascii_uppercase, 1)}",
                         f"{digits(rng, 3, '123456789')}-{digits(rng, 4)}-{digits(rng, 4)}",
                         f"SKU-{digits(rng, 4)}-{digits(rng, 3)}-{rand(rng, string.ascii_uppercase, 2)}"],
        "private_ip": [f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}", f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                       "127.0.0.1", f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"],
        "order_no": [f"{y}{m:02d}{d:02d}{digits(rng, 8)}", f"{y}{m:02d}{d:02d}-{digits(rng, 7)}"],
    }
    i = rng.randrange(len(options[kind]))
    return options[kind][i], f"{kind}{i}"


# ---------------------------------------------------------------------------------------------
# Cue words and template families
# ---------------------------------------------------------------------------------------------

CUES_KO = {
    "rrn": ["주민등록번호", "주민번호", "주민등록 번호"], "frn": ["외국인등록번호", "외국인 등록번호"],
    "brn": ["사업자등록번호", "사업자번호", "사업자 등록번호"], "driver": ["운전면허번호", "면허번호", "운전면허"],
    "passport": ["여권번호", "여권 번호"], "bank": ["계좌번호", "계좌", "입금계좌", "입금", "송금 계좌", "환불 계좌"],
    "card": ["카드번호", "신용카드", "결제 카드"], "phone": ["연락처", "휴대폰", "전화번호", "핸드폰", "tel"],
    "email": ["이메일", "메일 주소", "e-mail"], "ip": ["접속 IP", "IP 주소", "아이피"],
    "secret": ["API 키", "토큰", "비밀번호"],
}
CUES_EN = {
    "rrn": ["resident registration number", "RRN"], "frn": ["alien registration number", "ARC no."],
    "brn": ["business registration no.", "BRN"], "driver": ["driver's license no.", "licence number"],
    "passport": ["passport no.", "passport number"], "bank": ["account", "bank account", "deposit to", "acct no."],
    "card": ["card number", "credit card", "card"], "phone": ["phone", "mobile", "call", "tel."],
    "email": ["email", "e-mail", "contact"], "ip": ["IP address", "from IP", "client ip"],
    "secret": ["API key", "token", "password"],
}
CUES_KO["bank"] += [name for name, _, _, _ in BANKS]  # "국민은행 123456-12-123456"
CUES_EN["bank"] += [en for _, en, _, _ in BANKS]
JSON_KEYS = {
    "rrn": ["rrn", "jumin", "resident_no"], "frn": ["alien_reg_no", "frn"], "brn": ["biz_no", "business_number"],
    "driver": ["license_no", "driver_license"], "passport": ["passport_no", "passport"],
    "bank": ["account_no", "bank_account", "acct"], "card": ["card_no", "card_number", "pan"],
    "phone": ["phone", "mobile", "tel"], "email": ["email", "mail"], "ip": ["ip", "client_ip", "remote_addr"],
    "secret": ["api_key", "token", "password", "secret", "aws_secret_access_key", "KAKAO_REST_API_KEY"],
}
LOOK_CUES = {
    "date": ["날짜", "date", "작성일"], "time": ["시간", "time"], "isbn": ["ISBN"], "postcode": ["우편번호", "zip"],
    "tracking": ["운송장번호", "송장번호", "tracking no."], "money": ["금액", "amount", "가격"],
    "law": ["근거", "see"], "version": ["버전", "version"], "coordinate": ["좌표", "location"],
    "product_code": ["모델명", "품번", "part no."], "private_ip": ["내부 IP", "host"], "order_no": ["주문번호", "order"],
}
GENERIC_KEYS = ["value", "f3", "data", "col_7", "x", "memo"]

Renderer = Callable[[random.Random, str, str, bool, str], tuple[str, str]]


def _pick_cue(rng: random.Random, kind: str, label: str, lang: str) -> str:
    if label == "lookalike":
        return rng.choice(LOOK_CUES[kind])
    return rng.choice((CUES_KO if lang == "ko" else CUES_EN)[kind])


def ko_prose(rng: random.Random, kind: str, label: str, cue: bool, _: str) -> tuple[str, str]:
    if cue:
        c = _pick_cue(rng, kind, label, "ko")
        pre, post = rng.choice([(f"{c}는 ", " 입니다."), (f"{c}: ", " (확인 부탁드립니다)"), (f"제 {c}가 ", "인데 맞나요?"),
                                (f"{c} ", "로 처리해 주세요."), (f"{c}란에 ", "을 적었습니다."), (f"※ {c}({kind}) ", "")])
    else:
        pre, post = rng.choice([("혹시 ", " 이거 맞나요?"), ("어제 받은 번호가 ", "였어요."), ("", "로 연락 주시면 됩니다."),
                                ("참고: ", " 이상입니다."), ("메모에 ", "라고 적혀 있었다."), ("→ ", "")])
    return pre, post


def en_prose(rng: random.Random, kind: str, label: str, cue: bool, _: str) -> tuple[str, str]:
    if cue:
        c = _pick_cue(rng, kind, label, "en")
        pre, post = rng.choice([(f"My {c} is ", "."), (f"{c.capitalize()}: ", " (please verify)"),
                                (f"Please use {c} ", " for this."), (f"The {c} on file, ", ", was rejected."),
                                (f"{c} = ", "")])
    else:
        pre, post = rng.choice([("I wrote down ", " yesterday."), ("Reach me at ", " anytime."), ("It says ", " on the form."),
                                ("Ref ", " — see attached."), ("(", ")")])
    return pre, post


def table_row(rng: random.Random, kind: str, label: str, cue: bool, _: str) -> tuple[str, str]:
    name = rng.choice(KO_NAMES)
    col = _pick_cue(rng, kind, label, rng.choice(["ko", "en"])) if cue else rng.choice(["값", "비고", "col3", "내용"])
    style = rng.choice(["md", "tsv", "csv"])
    if style == "md":
        return f"| 이름 | {col} | 비고 |\n|---|---|---|\n| {name} | ", " | - |\n"
    if style == "tsv":
        return f"이름\t{col}\t등록일\n{name}\t", f"\t{rng.randint(2015, 2025)}-03-01\n"
    return f"id,name,{col}\n{rng.randint(1, 999)},{name},", "\n"


def json_field(rng: random.Random, kind: str, label: str, cue: bool, _: str) -> tuple[str, str]:
    key = rng.choice(JSON_KEYS.get(kind, [kind])) if cue else rng.choice(GENERIC_KEYS)
    if label == "lookalike" and cue:
        key = rng.choice(LOOK_CUES[kind]).replace(" ", "_")
    name = rng.choice(KO_NAMES)
    if rng.random() < 0.5:
        return f'{{"name": "{name}", "{key}": "', '", "ok": true}'
    return f'  {{\n    "user": "{name}",\n    "{key}": "', '"\n  },'


def code_config(rng: random.Random, kind: str, label: str, cue: bool, value: str) -> tuple[str, str]:
    key = rng.choice(JSON_KEYS.get(kind, [kind])) if cue else rng.choice(GENERIC_KEYS)
    if label == "lookalike" and cue:
        key = rng.choice(LOOK_CUES[kind]).replace(" ", "_").replace(".", "")
    if "\n" in value:  # PEM blocks live in files or triple-quoted strings
        return rng.choice([(f'{key.upper()} = """', '"""\n'), ("", "\n")])
    style = rng.choice(["py", "env", "yaml", "sql", "log", "js"])
    return {
        "py": (f'{key} = "', '"\n'), "env": (f"{key.upper()}=", "\n"), "yaml": (f"  {key}: ", "\n"),
        "sql": (f"INSERT INTO users (name, {key}) VALUES ('{rng.choice(KO_NAMES)}', '", "');\n"),
        "log": (f"2024-05-0{rng.randint(1, 9)} 12:0{rng.randint(0, 9)}:11 INFO {key}=", " status=200\n"),
        "js": (f"const {key} = '", "';\n"),
    }[style]


def markup_chat(rng: random.Random, kind: str, label: str, cue: bool, _: str) -> tuple[str, str]:
    """Held-out family: HTML/XML, chat exports and mail signatures never used while tuning."""
    lang = rng.choice(["ko", "en"])
    c = _pick_cue(rng, kind, label, lang) if cue else ""
    who = rng.choice(KO_NAMES)
    styles = [
        (f"<tr><th>{c or '항목'}</th><td>", "</td></tr>"),
        (f'<input type="text" name="f{rng.randint(1, 9)}" value="', '">' if not c else f'"> <!-- {c} -->'),
        (f"[오후 {rng.randint(1, 12)}:{rng.randint(10, 59)}] {who} : {c + ' ' if c else ''}", "\n"),
        (f"{who} 드림\n{c + ' | ' if c else ''}", "\n"),
        (f"<{('field' if not c else 'item')} label=\"{c}\">", "</field>" if not c else "</item>"),
        (f"> {who}님이 보냄: {c} ", " ㅎㅎ\n"),
        (f"--\n{who} / 팀장\n{c}{': ' if c else ''}", "\n"),
    ]
    return rng.choice(styles)


TUNE_FAMILIES: dict[str, Renderer] = {"ko_prose": ko_prose, "en_prose": en_prose, "table": table_row,
                                      "json": json_field, "code": code_config}
HELDOUT_FAMILIES: dict[str, Renderer] = {"markup_chat": markup_chat}


# ---------------------------------------------------------------------------------------------
# Carrier text (real corpora)
# ---------------------------------------------------------------------------------------------

def _jsonl_texts(path: Path, key: str = "text", limit: int = 3000) -> Iterator[str]:
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            yield json.loads(line)[key]


def _lines(path: Path, limit: int = 20000) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            yield line


def _tsv_column(path: Path, col: int, limit: int = 20000) -> Iterator[str]:
    with path.open(encoding="utf-8") as f:
        for i, row in enumerate(csv.reader(f, delimiter="\t" if path.suffix == ".tsv" else ",")):
            if 0 < i < limit and len(row) > col:
                yield row[col]


CARRIERS: dict[str, dict[str, Callable[[], Iterator[str]]]] = {
    "tune": {
        "ko/nsmc": lambda: _tsv_column(DATA / "corpus/ko/nsmc/nsmc_raw_reviews.tsv", 4),
        "ko/petitions": lambda: _jsonl_texts(DATA / "corpus/ko/petitions/petitions_2019-07", "content", 400),
        "ko/kowiki": lambda: _jsonl_texts(DATA / "corpus/ko/kowiki/kowiki.jsonl", limit=1500),
        "ko/chatbot": lambda: _tsv_column(DATA / "corpus/ko/chatbot/ChatbotData.csv", 0),
        "en/python_docs": lambda: _jsonl_texts(DATA / "corpus/en/python_docs/python311_docs_rst.jsonl", limit=200),
    },
    "heldout": {
        "ko/statutes": lambda: _jsonl_texts(DATA / "corpus/ko/statutes/kr_statutes.jsonl", limit=300),
        "ko/precedents": lambda: _jsonl_texts(DATA / "corpus/ko/precedents/kr_precedents.jsonl", limit=400),
        "ko/news_comments": lambda: _lines(DATA / "corpus/ko/news_comments/unlabeled_comments_5.txt"),
        "ko/boddari": lambda: _lines(DATA / "corpus/ko/boddari/txt/wikinews.txt"),
        "en/debian_docs": lambda: _jsonl_texts(DATA / "corpus/en/debian_docs/debian_docs_en.jsonl", limit=300),
    },
}


def carrier_pool(split: str) -> dict[str, list[str]]:
    """Sentences/lines of 15-300 characters from each carrier source of the split."""
    pool: dict[str, list[str]] = {}
    for name, load in CARRIERS[split].items():
        chunks = []
        for text in load():
            for piece in text.replace("\r", "").split("\n"):
                piece = piece.strip()
                if 15 <= len(piece) <= 300:
                    chunks.append(piece)
        pool[name] = chunks
    return pool


# ---------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------

def make_case(rng: random.Random, split: str, idx: int, pool: dict[str, list[str]],
              families: dict[str, Renderer]) -> Case:
    source = rng.choice(sorted(pool))
    family = rng.choice(sorted(families))
    case = Case(id=f"{split}-{idx:05d}", split=split, family=family, source=source, text="")
    parts: list[str] = []
    pos = 0

    def add(s: str) -> None:
        nonlocal pos
        parts.append(s)
        pos += len(s)

    def add_carrier() -> None:
        piece = rng.choice(pool[source])
        case.spans.append(Span(pos, pos + len(piece), "carrier", source, "", False))
        add(piece)

    for _ in range(rng.randint(1, 3)):
        add_carrier()
        add(rng.choice(["\n", " ", "\n\n"]))
        is_pii = rng.random() < 0.6
        kind = rng.choice(PII_TYPES if is_pii else LOOKALIKE_TYPES)
        cue = rng.random() < 0.6
        value, variant = PII_MAKERS[kind](rng, cue) if is_pii else lookalike(rng, kind)
        pre, post = families[family](rng, kind, "pii" if is_pii else "lookalike", cue, value)
        add(pre)
        case.spans.append(Span(pos, pos + len(value), "pii" if is_pii else "lookalike", kind, variant, cue))
        add(value)
        add(post)
        add(rng.choice(["\n", " "]))  # a value glued to the next sentence's digits would be another number
    add_carrier()
    case.text = "".join(parts)
    return case


def generate(per_split: int = 2500, seed: int = 0) -> list[Case]:
    """Deterministic cases for both splits; the held-out split shares no template family and no
    carrier source with tune."""
    cases = []
    for split, families in (("tune", TUNE_FAMILIES), ("heldout", HELDOUT_FAMILIES)):
        rng = random.Random(f"{seed}-{split}")
        pool = carrier_pool(split)
        cases += [make_case(rng, split, i, pool, families) for i in range(per_split)]
    return cases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-split", type=int, default=2500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"pii_gen: carrier corpora not found at {DATA}", file=sys.stderr)
        return 2
    cases = generate(args.per_split, args.seed)
    with args.out.open("w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(asdict(c), ensure_ascii=False) + "\n")
    for c in cases:
        for s in c.spans:
            assert c.text[s.start:s.end], c.id
    print(f"wrote {len(cases)} cases ({sum(len(c.spans) for c in cases)} planted spans) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
