"""The config sections after data (tokenizer, tokenize, compare, model, train, eval, export, generate, sft,
logging), and `GeckoConfig`, which holds them all."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gecko.config.data import DataConfig, SourceConfig
from gecko.config.fields import Lang, Preset, ranged


@dataclass(frozen=True)
class TokenizerConfig:
    kind: Literal["byte_bpe", "sentencepiece"] = "byte_bpe"
    """byte_bpe: byte-level BPE with Qwen2's split (llama.cpp `gpt2`/`qwen2`). sentencepiece: a SentencePiece
    BPE whose pieces may cross spaces and scripts (llama.cpp `llama`), +9% English and +13% code chars/token
    on held-out text at 32k (docs/tokenizer.md, Round 4); needs the `spm` extra."""
    vocab_size: int = ranged(32000, ge=512)
    """Including special and reserved tokens."""
    min_frequency: int = ranged(2, ge=1)
    """A pair must occur this often to be merged."""
    max_train_bytes: int | None = ranged(None, ge=1)
    """Train on at most this many bytes of the corpus, split across languages by lang_shares (None: all)."""
    lang_shares: dict[str, float] | None = None
    """Share of max_train_bytes per language (None: equal). A language with less text gives its unused share
    to the others in proportion. More Korean buys Korean vocabulary (docs/tokenizer.md has the ablation)."""
    character_coverage: float = ranged(0.9999, gt=0, le=1)
    """Share of training character occurrences covered by the BPE alphabet; rarer characters (Hanja, emoji)
    get no vocabulary slot of their own and are spelled with byte-fallback tokens (SentencePiece's rule)."""


@dataclass(frozen=True)
class TokenizeConfig:
    val_fraction: float = ranged(0.05, gt=0, lt=1)
    """Share of documents (per language, chosen by hashed id) held out for validation."""
    workers: int = ranged(0, ge=0)
    """Encoding processes (0: one per CPU core available to this process; 1: encode in this process)."""
    chunk_bytes: int = ranged(8 << 20, ge=1)
    """Largest corpus byte range per work unit, the grain of parallel encoding and of resuming an interrupted
    run (a smaller corpus is cut finer, into up to 256 units of at least 256 KiB). The shards are identical
    for any value."""


@dataclass(frozen=True)
class CompareConfig:
    """`gecko tokenizer compare`: efficiency on held-out text, ours beside reference tokenizers."""

    heldout: tuple[SourceConfig, ...] = ()
    """Text of other domains than the tokenizer's training text (read like data.sources)."""
    references: str | None = "../shared/data/tokenizers"
    """Folder searched for `*tokenizer.json` and SentencePiece `*.model` files (None: ours only)."""
    max_bytes_per_lang: int = ranged(2_000_000, ge=1)
    """Held-out UTF-8 bytes scored per language, taken round-robin across its sources."""


@dataclass(frozen=True)
class ModelConfig:
    preset: Preset = "tiny"
    """Named shape from gecko.model.presets; the fields below override it when set."""
    dim: int | None = ranged(None, ge=1)
    n_layers: int | None = ranged(None, ge=1)
    n_heads: int | None = ranged(None, ge=1)
    n_kv_heads: int | None = ranged(None, ge=1)
    ffn_dim: int | None = ranged(None, ge=1)
    max_seq_len: int | None = ranged(None, ge=1)
    rope_theta: float | None = ranged(None, gt=0)
    tie_embeddings: bool | None = None


@dataclass(frozen=True)
class TrainStageConfig:
    """One stage of staged (continued) pretraining; see gecko.train.stages."""

    name: str
    steps: int
    lr: float
    """Peak lr of this stage; its own warmup, then train.schedule's decay over its own steps."""
    warmup_steps: int = 0
    trainable: Literal["all", "new_embeddings", "embeddings"] = "all"
    """new_embeddings: only the rows of tokens added by `gecko tokenizer extend` (input and output);
    embeddings: every embedding row; all: the whole model."""


@dataclass(frozen=True)
class TrainConfig:
    seq_len: int = ranged(256, ge=8)
    """Tokens per packed sample."""
    batch_size: int = ranged(8, ge=1)
    """Packed samples per micro-batch (per process)."""
    grad_accum: int = ranged(1, ge=1)
    """Micro-batches per optimizer step."""
    steps: int = ranged(100, ge=1)
    lr: float = ranged(3e-3, gt=0)
    min_lr_ratio: float = ranged(0.1, ge=0, le=1)
    """Final learning rate as a fraction of lr."""
    warmup_steps: int = ranged(10, ge=0)
    schedule: Literal["cosine", "linear", "wsd", "constant"] = "cosine"
    weight_decay: float = ranged(0.1, ge=0)
    """Applied to 2-D weights only (not norms or biases)."""
    beta1: float = ranged(0.9, ge=0, lt=1)
    beta2: float = ranged(0.95, ge=0, lt=1)
    grad_clip: float | None = ranged(1.0, gt=0)
    """Max global grad norm (null: no clipping)."""
    doc_mask: bool = True
    """Mask attention at document boundaries and restart positions per document; False is the paper's
    naive packing."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Autocast dtype for the forward pass; master weights stay float32."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    """torch.compile each block and the loss (GPU runs; costs ~1 min of compilation at start)."""
    activation_checkpointing: Literal["none", "selective", "full"] = "none"
    """Recompute activations in backward to save memory: "selective" keeps matmul and attention outputs,
    "full" keeps only each block's input."""
    z_loss: float = ranged(0.0, ge=0)
    """Weight of PaLM's z-loss (logsumexp² of the logits) added to the objective; 1e-4 is typical."""
    loss_spike_factor: float = ranged(0.0, ge=0)
    """Skip the update when the loss exceeds this multiple of the mean of the last 20 accepted losses
    (0: off; NaN/inf losses and grad norms are always skipped)."""
    peak_tflops: float | None = ranged(None, gt=0)
    """The card's bf16 matmul rate for MFU; None: measured at start on CUDA (no MFU on CPU)."""
    log_every: int = ranged(10, ge=1)
    eval_every: int | None = ranged(None, ge=1)
    """Steps between validation bits-per-byte passes (null: only at the start and end)."""
    eval_tasks: tuple[str, ...] = ()
    """Benchmarks (names as in eval.tasks, bpb aside) also scored at every validation point, on the main
    process, with the eval section's settings; logged as `eval_tasks` in metrics.jsonl and TensorBoard."""
    eval_tasks_limit: int | None = ranged(20, ge=1)
    """Items per task (per subject for KMMLU and MMLU) at each of those points; None: eval.limit."""
    checkpoint_every: int | None = ranged(None, ge=1)
    """Steps between checkpoints (null: only at the end)."""
    keep_checkpoints: int = ranged(3, ge=1)
    """Complete checkpoints kept; older ones are deleted once a newer one is complete."""
    async_checkpoint: bool = True
    """On CUDA, copy the state to host memory and write it in the background while training goes on (the
    copy is the only stall); CPU runs save synchronously."""
    stages: tuple[TrainStageConfig, ...] = ()
    """Consecutive stages, each with its own steps, lr, warmup and trainable set (empty: one stage of
    `steps` at `lr`). When set, `steps` must equal their sum; `lr` and `warmup_steps` are not used."""


EARLY_TASKS = (
    "kobest_boolq",
    "kobest_copa",
    "kobest_hellaswag",
    "kobest_sentineg",
    "kobest_wic",
    "arc_easy",
    "arc_challenge",
    "piqa",
    "winogrande",
    "lambada",
)
"""Zero-/few-shot tasks that separate models at proxy scale (docs/evaluation.md)."""
EVAL_TASKS = ("bpb", "kmmlu", "mmlu", "gsm8k", "humaneval", "mbpp", *EARLY_TASKS)
"""Built-in eval tasks; a name from eval.mc_sets or a task file is a task too."""
SUITES = {"early": ("bpb", *EARLY_TASKS, "kmmlu", "mmlu")}
"""Named task lists (docs/evaluation.md): `early` gives signal at proxy scale (bits per byte, cloze tasks)."""


@dataclass(frozen=True)
class MCSetConfig:
    """A local multiple-choice set (JSONL or CSV) mapped onto question / choices / answer."""

    name: str
    path: str
    question: str = "question"
    """Column (CSV header) or field (JSONL) with the question text."""
    choices: tuple[str, ...] = ("A", "B", "C", "D")
    """One column per option, in order; the options are lettered A, B, …"""
    answer: str = "answer"
    answer_base: int | None = ranged(None, ge=0, le=1)
    """None: the answer is a letter; 0 or 1: an integer index counted from it."""


@dataclass(frozen=True)
class EvalConfig:
    max_tokens_per_lang: int = ranged(50_000, ge=0)
    """Validation tokens scored per language (0: all)."""
    batch_size: int = ranged(8, ge=1)
    tasks: tuple[str, ...] = ("bpb",)
    """What `gecko eval` scores; each also names a local MC set from mc_sets."""
    limit: int | None = ranged(None, ge=1)
    """Items per task (per subject for KMMLU and MMLU, as lm-eval's --limit); None: all."""
    missing_data: Literal["error", "skip"] = "error"
    """A task whose data folder is absent: stop with an error, or record it as skipped with the path."""
    kmmlu_dir: str = "../shared/data/eval/kmmlu/data"
    """KMMLU as released: {Subject}-dev.csv and {Subject}-test.csv."""
    mmlu_dir: str = "../shared/data/eval/mmlu/data"
    """MMLU as released: dev/ and test/ with {subject}_{split}.csv."""
    gsm8k_dir: str = "../shared/data/eval/gsm8k/grade_school_math/data"
    humaneval_file: str = "../shared/data/eval/humaneval/data/HumanEval.jsonl.gz"
    mbpp_file: str = "../shared/data/eval/mbpp/mbpp.jsonl"
    mc_shots: int = ranged(5, ge=0)
    """Few-shot examples for KMMLU and MMLU, taken in order from each subject's dev split."""
    gsm8k_shots: int = ranged(8, ge=0)
    """Chain-of-thought exemplars before each GSM8K question (at most 8 with gsm8k_fewshot=standard)."""
    gsm8k_fewshot: Literal["standard", "train"] = "standard"
    """standard: the 8 hand-written exemplars of Wei et al. (2022), as lm-eval's gsm8k_cot; train: the first
    gsm8k_shots worked solutions of gsm8k_dir/train.jsonl."""
    gen_max_new_tokens: int = ranged(256, ge=1)
    """Generation budget for GSM8K and code."""
    code_samples: int = ranged(1, ge=1)
    """Completions per code problem (n); pass@k needs n ≥ k."""
    code_pass_k: tuple[int, ...] = (1,)
    code_temperature: float = ranged(0.0, ge=0)
    """0: greedy (use with code_samples=1); 0.2–0.8 for pass@k with k > 1."""
    sandbox_timeout_s: float = ranged(10.0, gt=0)
    """Wall-clock limit per program (CPU limit is the same, rounded up)."""
    sandbox_workers: int = ranged(0, ge=0)
    """int >= 0; programs run in parallel by code tasks (each its own sandbox); 0 = one per CPU core."""
    unsafe_no_sandbox: bool = False
    """bool; true runs model code where the kernel sandbox is unavailable (rlimits and an audit hook only)."""
    mc_sets: tuple[MCSetConfig, ...] = ()
    """Extra local multiple-choice sets, scored zero-shot by the KMMLU/MMLU engine."""
    suite: Literal["none", "early"] = "none"
    """A named task list added to `tasks` (config.SUITES); `train.eval_tasks` may name a suite too."""
    formulation: Literal["mc", "cloze", "both"] = "both"
    """Multiple-choice formulation: lettered options (mc), answer texts scored as continuations (cloze,
    OLMES's RC, normalized raw/per token/per character), or both side by side."""
    task_files: tuple[str, ...] = ()
    """TASK.yaml files of local multiple-choice tasks (`gecko eval --task`), docs/evaluation.md."""
    kobest_dir: str = "../shared/data/eval/kobest/v1.0"
    """KoBEST as released: {BoolQ,COPA,HellaSwag,SentiNeg,WiC}/{train,dev,test}.tsv."""
    arc_dir: str = "../shared/data/eval/arc"
    """ARC-Easy/ and ARC-Challenge/ with ARC-*-{Train,Dev}.jsonl (dev is scored, train gives the shots)."""
    piqa_dir: str = "../shared/data/eval/piqa"
    """valid.jsonl and valid-labels.lst."""
    winogrande_dir: str = "../shared/data/eval/winogrande"
    """dev.jsonl (scored) and train_m.jsonl (shots), labels in the `answer` field."""
    lambada_file: str = "../shared/data/eval/lambada_openai/lambada_test.jsonl"


@dataclass(frozen=True)
class ExportConfig:
    dtype: Literal["float32", "bfloat16"] = "float32"
    max_shard_bytes: int = ranged(2 << 30, ge=1)
    """Weights larger than this are split into model-0000i-of-0000n.safetensors plus an index."""
    license: str = "apache-2.0"
    """SPDX id written to the model card (see docs/release.md for the data and tokenizer licences)."""
    gguf: Literal["f32", "f16", "bf16", "q8_0"] | None = None
    """Also write RUN/export/model-{gguf}.gguf through llama.cpp's converter (`gecko export --gguf`)."""


@dataclass(frozen=True)
class GenerateConfig:
    prompts: tuple[str, ...] = ("대한민국의 수도는",)
    prompts_file: str | None = None
    """Text file with one prompt per line (blank lines skipped); replaces `prompts` when set."""
    max_new_tokens: int = ranged(48, ge=1)
    temperature: float = ranged(0.8, ge=0)
    top_k: int = ranged(50, ge=0)
    top_p: float = ranged(1.0, gt=0, le=1)
    repetition_penalty: float = ranged(1.0, gt=0)
    """CTRL/Hugging Face penalty on tokens already in the prompt or output (1.0: off)."""
    stop: tuple[str, ...] = ()
    """Stop a completion at the first of these strings (the string itself is cut off)."""
    batch_size: int = ranged(8, ge=1)
    """Prompts decoded together (left-padded, one KV cache)."""
    stream: bool = False
    """Print tokens as they are sampled (one prompt at a time)."""
    seed: int = 0


@dataclass(frozen=True)
class ChatSourceConfig:
    name: str
    path: str
    lang: Lang
    format: Literal["jsonl", "csv", "tsv"] = "jsonl"
    """jsonl: {"messages": [{"role": "system"|"user"|"assistant", "content": str}, …]} per line;
    csv/tsv: one question/answer pair per row, with a header."""
    question: str = "Q"
    """csv/tsv column holding the user turn."""
    answer: str = "A"
    """csv/tsv column holding the assistant turn."""
    prompt: str = "{question}"
    """User turn built from the question column, e.g. "Translate into Korean: {question}"."""
    max_conversations: int | None = ranged(None, ge=1)


@dataclass(frozen=True)
class SFTConfig:
    """`gecko sft`: instruction tuning of an exported (or any LLaMA-format) Hugging Face model."""

    sources: tuple[ChatSourceConfig, ...] = ()
    init_from: str | None = None
    """Hugging Face folder to start from (None: RUN/export/hf); its tokenizer_config.json must hold a
    chat template."""
    system: str | None = None
    """System message for conversations that have none (None: no system turn)."""
    val_fraction: float = ranged(0.05, gt=0, lt=1)
    """Share of conversations (chosen by hashed id) held out for evaluation."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            seq_len=256, batch_size=8, steps=200, lr=3e-4, warmup_steps=20, eval_every=100, log_every=10
        )
    )
    """The same trainer settings as pretraining; lr is ~10× lower because the model is already trained."""


Sink = Literal["tensorboard", "wandb", "mlflow", "trackio", "jsonl"]


@dataclass(frozen=True)
class LoggingConfig:
    """Experiment trackers (gecko.tracking). The data, train, eval and sft stages log the resolved config,
    training metrics, eval tables and their reports and plots to every sink listed. No field here changes
    any stage's output."""

    sinks: tuple[Sink, ...] = ()
    """Any of tensorboard (RUN/STAGE/tensorboard), wandb (offline by default: RUN/wandb), mlflow (RUN/mlflow.db),
    trackio ($TRACKIO_DIR) and jsonl (RUN/tracking.jsonl). tensorboard needs the `train` extra, the others
    the `trackers` extra."""
    project: str = "gecko"
    """W&B project, MLflow experiment and trackio project name."""
    run_name: str | None = None
    """Groups the stages' tracker runs (named RUN_NAME-STAGE); None: the run folder's name."""
    wandb_mode: Literal["offline", "online"] = "offline"
    """offline writes RUN/wandb only (upload later with `wandb sync RUN/wandb/offline-run-*`); online streams
    to the W&B server (needs `wandb login`)."""
    wandb_entity: str | None = None
    """W&B team or user (None: the logged-in user's default)."""
    mlflow_uri: str | None = None
    """MLflow tracking URI, e.g. http://mlflow.internal:5000 (None: sqlite:///RUN/mlflow.db, artifacts in
    RUN/mlartifacts)."""


@dataclass(frozen=True)
class GeckoConfig:
    run_dir: str = "runs/demo"
    """Every stage writes below this directory."""
    seed: int = 1234
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir)


def expand_tasks(tasks: tuple[str, ...], suite: str = "none") -> tuple[str, ...]:
    """Task names with every suite name replaced by its tasks (and `suite` appended), without repeats."""
    names = [t for name in (*tasks, *([suite] if suite != "none" else [])) for t in SUITES.get(name, (name,))]
    return tuple(dict.fromkeys(names))
