"""Mixed documents (Korean prose with code blocks) are handled by span: normalization, language, quality, PII."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

from datatrove.data import Document

from conftest import shared_or_skip
from gecko.config import CleanConfig, EnQualityConfig
from gecko.data.steps.langid import LanguageFilter
from gecko.data.steps.normalize import normalize_text
from gecko.data.steps.pii import scrub
from gecko.data.steps.quality import QualityFilter, check
from gecko.data.text.spans import prose, segments

CODE = "def f(x):  \n\tif x:   \n\n\n\n        return {'a': [x, x]}  \n"
TUTORIAL = (
    "파이썬에서 함수를 정의하는 방법을 알아봅시다.   \n\n\n\n아래 예제는 인자를 받아 사전을 돌려줍니다.\n"
    f"```python\n{CODE}```\n"
    "위 함수는 x가 참일 때만 값을 돌려줍니다. 조건문과 반환문의 관계를 잘 살펴보세요.\n"
)


def test_segments_concatenate_back_and_find_fenced_blocks_only():
    text = (
        "앞 문단 ```inline``` 그대로\n~~~\ncode ```\n~~~~\n"  # a tilde block holding backticks
        "중간\n  ```js\nlet a = 1;\n```\n끝\n```\nnever closed\n"
    )
    parts = segments(text)
    assert "".join(p for _, p in parts) == text
    assert [p for is_code, p in parts if is_code] == [
        "~~~\ncode ```\n~~~~",
        "  ```js\nlet a = 1;\n```",
        "```\nnever closed\n",
    ]
    assert segments("no fence here") == [(False, "no fence here")]
    assert prose("```\nonly code\n```") == "```\nonly code\n```"  # all code: the text itself


def test_normalize_tidies_prose_and_keeps_code_blocks_byte_exact():
    out = normalize_text(TUTORIAL, is_code=False)
    assert f"```python\n{CODE}```" in out  # trailing spaces, tab and blank lines of the block kept
    assert "알아봅시다.\n\n아래" in out  # the prose lost its trailing spaces and blank-line run


def test_korean_tutorial_with_much_code_stays_korean_and_passes_the_korean_rules():
    text = TUTORIAL.replace(CODE, CODE * 30)
    doc = Document(text=text, id="t", metadata={})
    assert LanguageFilter().filter(doc) is True and doc.metadata["lang"] == "ko"
    assert check(text, "ko", CleanConfig(), 50) is None
    docs = [Document(text=text, id="t", metadata={"lang": "ko"})]
    assert QualityFilter(CleanConfig(), 50).filter_batch(docs) == [True]
    # the same code in the prose, unfenced, still fails (the rules read the prose, not a label)
    assert check(text.replace("```python", "").replace("```", ""), "ko", CleanConfig(), 50) is not None


def test_english_tutorial_braces_only_in_code_pass_c4():
    cfg = CleanConfig(en=EnQualityConfig(c4_curly_brace=True))  # off by default; on, it reads the prose
    text = (
        "This guide shows how a function returns a dictionary of the values that it was given. "
        "The function below is short, and it is the whole of the example that we discuss here.\n"
        f"```python\n{CODE}```\nThe function returns the mapping only when the value is true, and "
        "otherwise it returns nothing at all to the caller of the function.\n"
    )
    assert check(text, "en", cfg, 50) is None
    assert check(text.replace("```python", "").replace("```", ""), "en", cfg, 50) == "c4_curly_brace"


def test_pii_is_found_in_the_prose_and_in_the_code_of_one_document():
    text = (
        "담당자 연락처는 010-2345-6789 입니다.\n```python\n"
        'API_KEY = "sk-proj-9fQ2xLmT7vB3nR8kW1cZ5yH4"\nowner = "hong@example.co.kr"\n```\n'
    )
    out, counts = scrub(text)
    assert "010-2345-6789" not in out and "sk-proj-9fQ2" not in out and "hong@example.co.kr" not in out
    assert sum(counts.values()) == 3
    assert out.count("\n") == text.count("\n") and "```python\nAPI_KEY = " in out  # the block keeps its lines


def test_real_korean_prose_with_real_code_blocks_stays_korean_and_keeps_its_code():
    """Paragraphs of the Korean Python docs around real standard-library functions, as a blog post has them."""
    ko = shared_or_skip("corpus", "ko", "python_docs_ko", "python_docs_ko.jsonl")
    paragraphs = [
        p for line in ko.open(encoding="utf-8") for p in json.loads(line)["text"].split("\n") if len(p) > 80
    ][:300]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    blocks = [
        (stdlib / name).read_text(encoding="utf-8")[:4000]
        for name in ("textwrap.py", "shlex.py", "fnmatch.py", "bisect.py", "colorsys.py", "heapq.py")
    ]
    cfg, kept = CleanConfig(), 0
    for i, block in enumerate(blocks * 5):
        text = (
            "\n".join(paragraphs[i * 4 : i * 4 + 2])
            + f"\n```python\n{block}\n```\n"
            + "\n".join(paragraphs[i * 4 + 2 : i * 4 + 4])
        )
        out = normalize_text(text, is_code=False)
        assert f"```python\n{block}\n```" in out, i
        doc = Document(text=out, id=str(i), metadata={})
        assert LanguageFilter().filter(doc) is True and doc.metadata["lang"] == "ko", i
        kept += check(out, "ko", cfg, 50) is None
    assert kept >= 28  # of 30; before span handling most failed ko_hangul_ratio


def _segments_by_scan(text: str) -> list[tuple[bool, str]]:
    """segments() as the fence regexes scanning the whole text find them (the reference for fence_lines)."""
    from gecko.data.text.spans import _OPEN, _closing, has_code_blocks

    if not has_code_blocks(text):
        return [(False, text)]
    out, pos = [], 0
    for m in _OPEN.finditer(text):
        fence = m.group(1)
        if m.start() < pos or (fence[0] == "`" and "`" in m.group(2)):
            continue
        close = _closing(fence[0], len(fence)).search(text, m.end() + 1)
        end = close.end() if close else len(text)
        out += [(False, text[pos : m.start()]), (True, text[m.start() : end])]
        pos = end
    out.append((False, text[pos:]))
    return [(is_code, piece) for is_code, piece in out if piece]


def test_segments_jump_to_fence_lines_and_find_what_a_whole_text_scan_finds():
    """segments() tries the fence regexes only on lines str.find shows a fence on: indented 0-4 spaces,
    longer closing fences, several fences on a line, fences at the very start and end, CRLF and U+2028
    (not line breaks to `^`), and random mixes of them must split exactly as a scan of the whole text."""
    import random

    texts = [
        "```\na\n```",
        "   ```py\nx\n    ```\n   ````\n",
        "\n~~~~\n~~~\n ~~~~~ \t\nafter",
        "a ``` b ```\n```` ```\n``` x\n```\r\n```\u2028```\n```",
        "````\n```\n`````",
        "~~~",
        "text\n```",
    ]
    rnd = random.Random(7)
    pieces = ["```", "~~~", "`", "~", " ", "  ", "    ", "\n", "\n", "x", "\t", "````", "\r\n", "\u2028"]
    texts += ["".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 14))) for _ in range(20000)]
    for text in texts:
        assert segments(text) == _segments_by_scan(text), repr(text)
    assert sum(any(is_code for is_code, _ in segments(text)) for text in texts) > 1000
