"""Precision and recall of gecko.data.pii per type on a planted set generated here (seeded, reproducible).

    .venv/bin/python bench/pii_eval.py [--per-type 300] [--seed 0]

Positives: `--per-type` synthetic PII values of each type (valid checksums, real Korean numbering plans),
each written the way people write it (Korean or English phrasing, with and without separators) and planted
between two real sentences from ../shared/data (Korean Wikipedia and petitions, the Debian and Python docs).
Negatives: as many look-alikes planted the same way: dates, times, versions, ISBNs, order and product codes,
phone-like numbers outside the Korean numbering plan, RRNs with a wrong checksum, card numbers failing Luhn,
private IPs, and code snippets with ordinary assignments.

A positive counts as found when its value is gone and the text holds a placeholder of its type; every other
placeholder is a false positive of its type. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from gecko.data.pii import PII_TYPES, luhn_ok, scrub

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus"


def sentences(rng: random.Random) -> tuple[list[str], list[str]]:
    def lines(path: Path, field: str = "text") -> list[str]:
        out = []
        with path.open(encoding="utf-8") as f:
            for i, raw in enumerate(f):
                if i >= 400:
                    break
                out += [s.strip() for s in json.loads(raw)[field].split("\n") if 30 < len(s.strip()) < 300]
        return out

    ko = lines(CORPUS / "ko/kowiki/kowiki.jsonl") + lines(CORPUS / "ko/petitions/petitions_2019-04", "content")
    en = lines(CORPUS / "en/debian_docs/debian_docs_en.jsonl") + lines(
        CORPUS / "en/python_docs/python311_docs_rst.jsonl")
    return ko, en


def rrn(rng: random.Random, valid: bool = True) -> str:
    d = f"{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.choice('1234')}"
    d += "".join(rng.choice(string.digits) for _ in range(5))
    check = (11 - sum(int(a) * b for a, b in zip(d, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5))) % 11) % 10
    check = check if valid else (check + rng.randint(1, 9)) % 10
    return f"{d[:6]}{rng.choice(['-', '-', ''])}{d[6:]}{check}"


def card(rng: random.Random, valid: bool = True) -> str:
    while True:
        digits = rng.choice("45") + "".join(rng.choice(string.digits) for _ in range(15))
        if luhn_ok(digits) == valid:
            sep = rng.choice(["-", " ", ""])
            return sep.join(digits[i:i + 4] for i in range(0, 16, 4))


def phone(rng: random.Random) -> str:
    n = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
    sep = rng.choice(["-", "-", " ", "."])
    return rng.choice([
        f"010{sep}{n(4)}{sep}{n(4)}", f"010{n(8)}", f"011{sep}{n(3)}{sep}{n(4)}",
        f"+82 10{sep}{n(4)}{sep}{n(4)}", f"+82-10-{n(4)}-{n(4)}", f"+82 2-{n(4)}-{n(4)}",
        f"02{sep}{n(3)}{sep}{n(4)}", f"02-{n(4)}-{n(4)}", f"031-{n(3)}-{n(4)}", f"(051) {n(3)}-{n(4)}",
        f"064.{n(3)}.{n(4)}", f"070-{n(4)}-{n(4)}"])


def public_ip(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return f"2001:4860:{rng.randint(1, 0xffff):x}:{rng.randint(1, 0xffff):x}::{rng.randint(1, 0xffff):x}"
    while True:
        a = rng.randint(1, 223)
        if a not in (10, 127, 169, 172, 192, 100, 198, 203):
            return f"{a}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def secret(rng: random.Random) -> str:
    r = lambda k, cs=string.ascii_letters + string.digits: "".join(rng.choice(cs) for _ in range(k))  # noqa: E731
    return rng.choice([
        "AKIA" + r(16, string.ascii_uppercase + string.digits), "ghp_" + r(36), "AIza" + r(35),
        "xoxb-" + r(11, string.digits) + "-" + r(24), "sk-" + r(48), "glpat-" + r(20),
        f'api_key = "{r(32)}"', f'password: "{r(16)}"', f"SECRET_KEY='{r(40)}'",
        "-----BEGIN RSA PRIVATE KEY-----\n" + r(64) + "\n" + r(64) + "\n-----END RSA PRIVATE KEY-----"])


def account(rng: random.Random) -> str:
    n = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
    return rng.choice([f"{n(3)}-{n(2)}-{n(6)}", f"{n(3)}-{n(6)}-{n(5)}", f"{n(4)}-{n(3)}-{n(6)}",
                       f"{n(6)}-{n(2)}-{n(6)}", f"{n(3)}-{n(4)}-{n(4)}-{n(2)}", n(12)])


def email(rng: random.Random) -> str:
    user = rng.choice(["kim", "lee.js", "park_92", "hong+news", "j.smith", "admin"]) + str(rng.randint(1, 999))
    return f"{user}@{rng.choice(['naver.com', 'gmail.com', 'daum.net', 'korea.ac.kr', 'example.co.kr'])}"


def passport(rng: random.Random) -> str:
    n = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
    return rng.choice([f"M{n(8)}", f"S{n(8)}", f"M{n(3)}{rng.choice(string.ascii_uppercase)}{n(4)}"])


# (type, value maker, Korean phrasings, English phrasings); {} is the value.
POSITIVES: list[tuple[str, Callable[[random.Random], str], list[str], list[str]]] = [
    ("rrn", rrn, ["주민등록번호는 {}입니다.", "주민번호 {} 확인 바랍니다."], ["Resident number: {}."]),
    ("phone", phone, ["연락처는 {}입니다.", "문의: {}로 전화 주세요."], ["Call us at {} for details."]),
    ("email", email, ["이메일 {}으로 보내 주세요.", "메일: {}"], ["Contact {} for help."]),
    ("card", card, ["카드번호 {}로 결제했습니다."], ["Card number {} was charged."]),
    ("bank_account", account, ["국민은행 계좌 {}로 입금해 주세요.", "입금 계좌: 신한 {} (예금주 홍길동)"],
     ["Bank account {} at Woori Bank."]),
    ("ip", public_ip, ["접속 IP는 {}였습니다."], ["Connections from {} were blocked."]),
    ("passport", passport, ["여권번호 {}를 입력하세요.", "여권 번호: {}"], ["Passport No. {} expires in 2030."]),
    ("secret", secret, ["설정 파일에 {}가 그대로 들어 있었다."], ["The config contained {} in plain text."]),
]


def negative(rng: random.Random) -> str:
    n = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
    return rng.choice([
        f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}에 열렸다.",
        f"{rng.randint(1990, 2030)}.{rng.randint(1, 12):02d}.{rng.randint(1, 28):02d} 기준",
        f"released on {rng.randint(1990, 2030)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
        f"at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        f"version {rng.randint(0, 20)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}",
        f"Python {rng.randint(2, 3)}.{rng.randint(0, 13)}.{rng.randint(0, 20)} 이상",
        f"ISBN 978-89-{n(4)}-{n(3)}-{n(1)}", f"주문번호 {rng.randint(2019, 2025)}-{n(4)}-{n(4)}",
        f"제품 코드 SKU-{n(5)}-{n(3)}", f"모델명 M{n(7)}", f"part no. {n(3)}-{n(3)}-{n(4)}",
        f"대표번호 1588-{n(4)}", f"{n(3)}-{n(4)}-{n(4)}번 버스", f"order {n(13)}",
        f"주민번호처럼 보이는 {rrn(rng, valid=False)}", f"무효 카드 {card(rng, valid=False)}",
        f"내부망 192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}", f"loopback 127.0.0.{rng.randint(1, 254)}",
        f"x = {n(6)}", "token = get_token(user)", 'password = os.environ["DB_PASSWORD"]',
        f"인구는 {rng.randint(1, 999)},{n(3)},{n(3)}명", f"좌표 {rng.uniform(30, 40):.6f}, {rng.uniform(120, 130):.6f}",
        f"std::vector<int> v; // {rng.randint(1, 99)}:{rng.randint(10, 59)}",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-type", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    ko, en = sentences(rng)
    # Real text holds real PII (authors' e-mails in the Python docs) and look-alikes (section 4.1.2.1): count
    # those apart, then plant only into sentences where nothing is found, so every hit below is attributable.
    background, n_background = Counter(), len(ko) + len(en)
    for s in ko + en:
        background.update(scrub(s)[1])
    ko, en = [s for s in ko if not scrub(s)[1]], [s for s in en if not scrub(s)[1]]
    tp, fn, fp = Counter(), Counter(), Counter()
    misses: dict[str, list[str]] = {}
    for kind, make, ko_forms, en_forms in POSITIVES:
        for i in range(args.per_type):
            korean = i % 3 != 2
            value = make(rng)
            pool = ko if korean else en
            text = f"{rng.choice(pool)} {rng.choice(ko_forms if korean else en_forms).format(value)} {rng.choice(pool)}"
            out, counts = scrub(text)
            found = value not in out and counts[kind] >= 1
            tp[kind] += found
            fn[kind] += not found
            if not found:
                misses.setdefault(kind, []).append(value)
            for k, c in counts.items():
                fp[k] += c - (1 if (k == kind and found) else 0)
    n_neg = args.per_type * len(POSITIVES)
    for _ in range(n_neg):
        text = f"{rng.choice(ko + en)} {negative(rng)} {rng.choice(ko + en)}"
        _, counts = scrub(text)
        fp.update(counts)
    print(f"planted: {sum(tp.values()) + sum(fn.values())} PII items, {n_neg} look-alike negatives (seed {args.seed})\n")
    print("| type | planted | found | missed | false positives | precision | recall |\n|---|---:|---:|---:|---:|---:|---:|")
    for kind in PII_TYPES:
        p = tp[kind] / max(tp[kind] + fp[kind], 1)
        r = tp[kind] / max(tp[kind] + fn[kind], 1)
        print(f"| {kind} | {tp[kind] + fn[kind]} | {tp[kind]} | {fn[kind]} | {fp[kind]} | {p:.3f} | {r:.3f} |")
    T, F, N = sum(tp.values()), sum(fp.values()), sum(fn.values())
    print(f"| **all** | {T + N} | {T} | {N} | {F} | {T / max(T + F, 1):.3f} | {T / max(T + N, 1):.3f} |")
    print(f"\nfound in the {n_background:,} real background sentences (those are left out of the pools): "
          + ", ".join(f"{k} {v}" for k, v in background.most_common()))
    for kind, values in misses.items():
        print(f"\nmissed {kind}: {values[:5]}")


if __name__ == "__main__":
    main()
