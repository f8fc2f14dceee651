"""Exact and near-duplicate (MinHash-LSH) dedup as datatrove steps: signatures → (boilerplate merge) →
index → buckets → clusters, then the filter (gecko.data.steps.dedup.filter).

Each stage reads only what the previous one left on disk under a work folder, so every stage shards across
workers and machines (signatures, index and filter by input file, buckets by LSH band, clusters in one task
over small integer pairs):

    signatures/{rank}.npy   one MinHash row (num_perm uint32, from rensa) per document of the rank
    docs/{rank}.jsonl       id, lang, length and exact-text digest of each document, in reading order
    records/{rank}.npy      what later passes need to use the shard's lines undecoded (reread.RECORD)
    lines/, doclines/       the boilerplate line tally (boilerplate.LineTally)
    cuts/{rank}.npy         the lines cut from each stripped document (boilerplate.write_cuts)
    bands/{band}/{rank}.npy (band hash, text digest, rank, index) sorted; band "exact" hashes text digests
    pairs/{band}.npy        candidate pairs found in a band (near pairs checked against the threshold)
    clusters/{rank}.json    documents of the rank to drop, with the survivor each duplicates

Signatures, lengths and digests are of the text after boilerplate stripping. Clusters are connected
components of the pairs (union-find). The pairs depend on the documents only (a bucket is ordered by text
digest, see MinhashBuckets.run), and so does the survivor of a cluster is the longest document, ties broken
by the smallest id: the choice depends on the documents only, never on worker count or reading order, so
the output is the same whatever the sharding.
"""

from __future__ import annotations

import json
from array import array
from json.encoder import encode_basestring
from pathlib import Path

import numpy as np
import rensa
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from gecko.config import DedupConfig
from gecko.data.engine.step import batched
from gecko.data.io.readers import CorpusReader
from gecko.data.steps.dedup.boilerplate import LineTally, boilerplate_cuts, without_lines, write_cuts
from gecko.data.steps.dedup.exact import folded_key, normalized_key
from gecko.data.steps.dedup.reread import LANGS, OTHER_LANG, RECORD, documents_again, lang_code, line_hash
from gecko.data.steps.dedup.shingles import shingle_flat
from gecko.io.atomic import write_npy, write_text

EXACT = "exact"
REF = np.dtype([("hash", "<u8"), ("key", "<u8"), ("rank", "<u4"), ("index", "<u4")])
"""A document in a bucket: band hash, exact-text digest (orders a bucket by content, see MinhashBuckets),
and where the document is (rank, index in the rank)."""
BATCH = 512  # documents per rensa call: amortizes the Python → Rust crossing


def sort_refs(refs: np.ndarray) -> np.ndarray:
    """`refs` ordered by (hash, key, rank, index): np.sort(refs, order=[...]) with every field, which is
    a total order (a document is one (rank, index)), at half the cost of numpy's structured-array sort."""
    return refs[np.lexsort((refs["index"], refs["rank"], refs["key"], refs["hash"]))]


def sort_rank_runs(refs: np.ndarray) -> np.ndarray:
    """sort_refs of the rank files' refs concatenated in rank order, each sorted by sort_refs: a stable sort
    by (hash, key) keeps each tie in (rank, index) order already, at half the cost of sorting by all four."""
    return refs[np.lexsort((refs["key"], refs["hash"]))]


def _shingle_sizes(cfg: DedupConfig) -> dict[str, int]:
    return {"ko": cfg.shingle_ko, "en": cfg.shingle_en, "code": cfg.shingle_code}


def doc_lang(doc: Document) -> str:
    return doc.metadata.get("lang") or "other"


class MinhashSignatures(PipelineStep):
    """Stage 1, the one pass that decodes every document: a MinHash signature and meta (id, lang, length,
    exact-text digest) per document of its whole text, the boilerplate line tally (LineTally) and what later
    passes need to use the shard's lines without decoding them (reread.RECORD). The few documents with
    boilerplate lines get their signature and meta again in stage 2, once LineMerge knows those lines."""

    name = "🎯 minhash signatures"
    type = "🫂 - DEDUP"

    def __init__(self, work_dir: Path, cfg: DedupConfig):
        super().__init__()
        self.work_dir, self.cfg = Path(work_dir), cfg

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        tally = LineTally(self.cfg)
        sigs: list[np.ndarray] = []
        meta: list[dict] = []
        records: list[tuple[tuple[int, int], int, int, int, bool]] = []
        for batch in batched(data, BATCH):
            with self.track_time("batch"):  # datatrove's timer and counter once a batch, not once a document
                langs = [doc_lang(doc) for doc in batch]
                for doc, lang in zip(batch, langs):
                    folded = doc.text.casefold()
                    normalized = tally.add(len(meta), doc.text, folded, lang)
                    meta.append(doc_meta(doc, doc.text, folded, normalized))
                    records.append(self._record(doc, meta[-1]["key"], lang))
                shingles = shingle_flat([doc.text for doc in batch], langs, _shingle_sizes(self.cfg))
                sigs.append(signatures(shingles, self.cfg))
            self.stat_update("documents", value=len(batch))
        num_perm = self.cfg.bands * self.cfg.rows
        matrix = np.concatenate(sigs) if sigs else np.zeros((0, num_perm), dtype=np.uint32)
        w = self.work_dir
        if self.cfg.boilerplate_min_docs > 0:
            tally.write(w, rank)
        write_npy(w / "records" / f"{rank:05d}.npy", np.array(records, dtype=RECORD))
        write_npy(w / "signatures" / f"{rank:05d}.npy", matrix)
        write_text(w / "docs" / f"{rank:05d}.jsonl", "".join(map(doc_line, meta)))
        return iter(())

    def _record(self, doc: Document, key: int, lang: str) -> tuple[tuple[int, int], int, int, int, bool]:
        blank = len(doc.text.strip()) < self.cfg.min_chars_after_strip
        return line_hash(doc), len(doc.text.encode("utf-8", "surrogatepass")), key, lang_code(lang), blank


def doc_meta(doc: Document, text: str, folded: str | None = None, normalized: str | None = None) -> dict:
    """A document's row in docs/RANK.jsonl; `text`: its text after boilerplate stripping (`folded`: that
    text case-folded, `normalized`: `" ".join(folded.split())`, where the caller has them)."""
    if normalized is not None:
        digest = normalized_key(normalized)
    else:
        digest = folded_key(text.casefold() if folded is None else folded)
    key = int.from_bytes(digest[:8], "little")
    return {"id": doc.id, "lang": doc_lang(doc), "len": len(text), "key": key}


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def doc_line(meta: dict) -> str:
    """`meta` (doc_meta's row) as json.dumps(meta, ensure_ascii=False) writes it, formatted directly: the
    encoder's escaping of the two strings (encode_basestring, what it calls) and int's repr, without its
    per-dict machinery (0.25 CPU-s of the benchmark's 110 k rows)."""
    if type(meta["id"]) is not str or type(meta["lang"]) is not str or len(meta) != 4:
        return _ENCODE(meta) + "\n"
    id_, lang = encode_basestring(meta["id"]), encode_basestring(meta["lang"])
    return f'{{"id": {id_}, "lang": {lang}, "len": {meta["len"]}, "key": {meta["key"]}}}\n'


def signatures(shingles: tuple[np.ndarray, np.ndarray], cfg: DedupConfig) -> np.ndarray:
    """MinHash rows (num_perm uint32) of each shingle set (shingle_flat's hashes and offsets), in one rensa
    call; an empty set (an empty text) is the one shingle 0."""
    flat, offsets = shingles
    counts = np.diff(offsets)
    if not counts.all():  # give each empty set its 0
        sizes = np.maximum(counts, 1)
        starts = np.cumsum(sizes) - sizes
        padded = np.zeros(int(sizes.sum()), dtype=np.uint64)
        padded[np.repeat(starts - offsets[:-1], counts) + np.arange(len(flat))] = flat
        flat, offsets = padded, np.append(starts, len(padded))
    num_perm = cfg.bands * cfg.rows
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
        flat, offsets.astype(np.uint64), num_perm, cfg.seed
    )
    out = array("I")  # rensa gives Python lists: extending an array is twice as fast as np.asarray
    for row in matrix.to_rows():
        out.extend(row)
    return np.frombuffer(out, dtype=np.uint32).reshape(len(counts), num_perm)


def doc_rows(work_dir: Path, rank: int) -> list[str]:
    """docs/RANK.jsonl's rows, unparsed: a stage json.loads the few it needs (parsing all of them cost
    ~0.3 CPU-s per stage on the benchmark's 110 k documents)."""
    return (work_dir / "docs" / f"{rank:05d}.jsonl").read_text(encoding="utf-8").split("\n")[:-1]


def doc_langs(work_dir: Path, rank: int, records: np.ndarray) -> list[str]:
    """Each document's language, from its RECORD code (its docs/RANK.jsonl row where the code is not one
    of LANGS)."""
    codes = records["lang"].tolist()
    rows = doc_rows(work_dir, rank) if OTHER_LANG in codes else []
    return [LANGS[c] if c != OTHER_LANG else json.loads(rows[i])["lang"] for i, c in enumerate(codes)]


class MinhashIndex(PipelineStep):
    """Stage 2: the documents with boilerplate lines get the signature and meta of their stripped text (read
    again, only they decoded: reread.documents_again), then every document goes into the LSH bands.

    Rewriting signatures/ and docs/ in place is safe against a kill: a rerun recomputes the same documents
    from their text, whichever of the two files had been replaced."""

    name = "🎯 minhash index"
    type = "🫂 - DEDUP"

    def __init__(self, work_dir: Path, cfg: DedupConfig, reader: CorpusReader):
        super().__init__()
        self.work_dir, self.cfg, self.reader = Path(work_dir), cfg, reader

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        w = self.work_dir
        matrix = np.load(w / "signatures" / f"{rank:05d}.npy")
        records = np.load(w / "records" / f"{rank:05d}.npy")
        keys = records["key"].copy()
        cuts = boilerplate_cuts(w, rank)
        stripped = np.array(list(cuts), dtype=np.int64)
        if len(stripped):
            metas, restripped = self._restrip(rank, world_size, records, cuts)
            matrix = matrix.copy()
            matrix[stripped] = restripped
            keys[stripped] = [meta["key"] for meta in metas]
            write_npy(w / "signatures" / f"{rank:05d}.npy", matrix)
            self._patch_docs(rank, stripped.tolist(), metas)
        self.stat_update("stripped", value=len(stripped))
        self._write_bands(rank, matrix, keys)
        return iter(())

    def _restrip(
        self, rank: int, world_size: int, records: np.ndarray, cuts: dict[int, list[int]]
    ) -> tuple[list[dict], np.ndarray]:
        """Meta and signatures of the stripped texts of the documents in `cuts` (boilerplate_cuts), in index
        order; the cuts written to cuts/ for the filter."""
        docs, texts = [], []
        for index, _, document in documents_again(self.reader, rank, world_size, records):
            if index in cuts:
                docs.append(document())
                texts.append(without_lines(docs[-1].text, cuts[index]))
        write_cuts(self.work_dir, rank, cuts)
        shingles = shingle_flat(texts, [doc_lang(doc) for doc in docs], _shingle_sizes(self.cfg))
        return [doc_meta(doc, text) for doc, text in zip(docs, texts)], signatures(shingles, self.cfg)

    def _patch_docs(self, rank: int, indices: list[int], metas: list[dict]) -> None:
        """Replace the rows of docs/RANK.jsonl at `indices`, the others copied as they are."""
        path = self.work_dir / "docs" / f"{rank:05d}.jsonl"
        rows = path.read_text(encoding="utf-8").split("\n")  # not splitlines: an id may hold U+2028
        for index, meta in zip(indices, metas):
            rows[index] = doc_line(meta)[:-1]
        write_text(path, "\n".join(rows))

    def _write_bands(self, rank: int, matrix: np.ndarray, keys: np.ndarray) -> None:
        """The rank's refs in each band, sorted as sort_refs sorts them: by (key, index) once, then by each
        band's hash with a stable sort (one sort a band instead of four)."""
        w = self.work_dir
        refs = np.zeros(len(keys), dtype=REF)
        refs["rank"], refs["index"], refs["key"] = rank, np.arange(len(keys)), keys
        refs = refs[np.lexsort((refs["index"], refs["key"]))]
        refs["hash"] = refs["key"]
        write_npy(w / "bands" / EXACT / f"{rank:05d}.npy", refs)
        if not self.cfg.near:
            return
        rows = self.cfg.rows
        matrix = matrix[refs["index"]]
        with np.errstate(over="ignore"):
            for b in range(self.cfg.bands):
                band = matrix[:, b * rows : (b + 1) * rows].astype(np.uint64)
                h = np.zeros(len(keys), dtype=np.uint64)
                for k in range(rows):
                    h = h * np.uint64(0x100000001B3) + band[:, k]
                refs["hash"] = h ^ np.uint64(b) << np.uint64(56)
                write_npy(
                    w / "bands" / f"{b:03d}" / f"{rank:05d}.npy",
                    refs[np.argsort(refs["hash"], kind="stable")],
                )


class MinhashBuckets(PipelineStep):
    """Stage 3, one rank per band (the last rank is the exact band): documents sharing a bucket are pairs."""

    name = "🎯 minhash buckets"
    type = "🫂 - DEDUP"

    def __init__(self, work_dir: Path, cfg: DedupConfig):
        super().__init__()
        self.work_dir, self.cfg = Path(work_dir), cfg

    def bands(self) -> list[str]:
        return ([f"{b:03d}" for b in range(self.cfg.bands)] if self.cfg.near else []) + (
            [EXACT] if self.cfg.exact else []
        )

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        band = self.bands()[rank]
        files = sorted((self.work_dir / "bands" / band).glob("[0-9]*[0-9].npy"))
        refs = np.concatenate([np.load(f) for f in files]) if files else np.zeros(0, dtype=REF)
        # Within a bucket, documents are ordered by their text digest: the first one, with which every other
        # is checked against the threshold, is then chosen by content. Chosen by position (rank, index), it
        # changed with the sharding, and so did which pairs passed (A~B and B~C pass where A~C does not).
        # Equal digests are equal texts, with equal signatures, so which of them comes first changes nothing.
        refs = sort_rank_runs(refs)
        same = refs["hash"][1:] == refs["hash"][:-1]
        # Pair every document with the first of its run of equal hashes: columns rank_a, index_a, rank_b, index_b.
        starts = np.where(np.concatenate([[True], ~same]), np.arange(len(refs)), 0)
        first = np.maximum.accumulate(starts) if len(refs) else starts
        members = np.flatnonzero(np.concatenate([[False], same]))
        a, b = refs[first[members]], refs[members]
        pairs = np.stack([a["rank"], a["index"], b["rank"], b["index"]], axis=1).astype(np.int64)
        if band != EXACT and len(pairs):
            pairs = pairs[self._similar(pairs)]
        self.stat_update("pairs", value=len(pairs))
        write_npy(self.work_dir / "pairs" / f"{band}.npy", pairs)
        return iter(())

    def _similar(self, pairs: np.ndarray) -> np.ndarray:
        """Keep candidate pairs whose estimated Jaccard (share of equal MinHash values) reaches the threshold."""
        sig_dir = self.work_dir / "signatures"
        sigs = {int(r): np.load(sig_dir / f"{r:05d}.npy", mmap_mode="r") for r in np.unique(pairs[:, [0, 2]])}
        a, b = _rows(sigs, pairs[:, 0], pairs[:, 1]), _rows(sigs, pairs[:, 2], pairs[:, 3])
        return (a == b).mean(axis=1) >= self.cfg.threshold


def _rows(sigs: dict[int, np.ndarray], ranks: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Signature rows of the documents (ranks[i], indices[i]): one fancy index per rank, not per document."""
    num_perm = next(iter(sigs.values())).shape[1]
    out = np.empty((len(ranks), num_perm), dtype=np.uint32)
    for r, sig in sigs.items():
        mine = ranks == r
        out[mine] = sig[indices[mine]]
    return out


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


class MinhashClusters(PipelineStep):
    """Stage 4, one task: union-find over all pairs; every cluster keeps one deterministic survivor."""

    name = "🎯 minhash clusters"
    type = "🫂 - DEDUP"

    def __init__(self, work_dir: Path, cfg: DedupConfig):
        super().__init__()
        self.work_dir, self.cfg = Path(work_dir), cfg

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Memory is per paired document, not per document: the union-find runs over the documents that
        appear in a pair, and only their docs rows are parsed (one rank's rows read at a time)."""
        w = self.work_dir
        ranks = len(list((w / "docs").glob("[0-9]*[0-9].jsonl")))
        sizes = [_count_rows(w / "docs" / f"{r:05d}.jsonl") for r in range(ranks)]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        ga, gb = _global_pairs(w, offsets)
        nodes = np.unique(np.concatenate([ga, gb]))  # ascending, so clusters come out in document order
        uf = _UnionFind(len(nodes))
        for a, b in zip(np.searchsorted(nodes, ga).tolist(), np.searchsorted(nodes, gb).tolist()):
            uf.union(a, b)
        clusters: dict[int, list[int]] = {}
        for c in range(len(nodes)):
            clusters.setdefault(uf.find(c), []).append(c)
        meta = _paired_rows(w, offsets, nodes)
        drops: list[dict[str, dict]] = [{} for _ in range(ranks)]
        for members in clusters.values():
            if len(members) == 1:
                continue
            members = sorted(members, key=lambda c: (-meta[c]["len"], meta[c]["id"]))
            keep = meta[members[0]]
            for c in members[1:]:
                g = int(nodes[c])
                r = int(np.searchsorted(offsets, g, side="right") - 1)
                kind = EXACT if meta[c]["key"] == keep["key"] else "near"
                drops[r][str(g - offsets[r])] = {"duplicate_of": keep["id"], "kind": kind}
        for r, d in enumerate(drops):
            write_text(w / "clusters" / f"{r:05d}.json", json.dumps(d, ensure_ascii=False))
        self.stat_update("documents", value=int(offsets[-1]))
        return iter(())


def _count_rows(path: Path) -> int:
    with path.open("rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def _global_pairs(work_dir: Path, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every band's pairs as global document numbers (rank offset + index)."""
    ga, gb = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for f in sorted((work_dir / "pairs").glob("*.npy")):
        pairs = np.load(f)
        ga.append(offsets[pairs[:, 0]] + pairs[:, 1])
        gb.append(offsets[pairs[:, 2]] + pairs[:, 3])
    return np.concatenate(ga), np.concatenate(gb)


def _paired_rows(work_dir: Path, offsets: np.ndarray, nodes: np.ndarray) -> dict[int, dict]:
    """Node number → its parsed docs row, for the paired documents only."""
    meta: dict[int, dict] = {}
    for r in range(len(offsets) - 1):
        mine = np.flatnonzero((nodes >= offsets[r]) & (nodes < offsets[r + 1]))
        if not len(mine):
            continue
        wanted = dict(zip((nodes[mine] - offsets[r]).tolist(), mine.tolist()))
        with (work_dir / "docs" / f"{r:05d}.jsonl").open(encoding="utf-8") as f:  # streamed: rows not kept
            for i, row in enumerate(f):
                if i in wanted:
                    meta[wanted[i]] = json.loads(row)
    return meta
