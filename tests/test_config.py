from pathlib import Path

import pytest

from gecko.config import load_config
from gecko.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_demo_config_loads_and_validates():
    cfg = load_config(REPO / "configs" / "demo.yaml")
    assert cfg.data.mix == {"ko": 0.35, "en": 0.28, "code": 0.37}
    assert {s.lang for s in cfg.data.sources} == {"ko", "en", "code"}


def test_overrides_apply_with_types():
    cfg = load_config(
        REPO / "configs" / "demo.yaml",
        ["train.steps=7", "train.warmup_steps=2", "train.lr=1e-3", "model.dim=64"],
    )
    assert cfg.train.steps == 7 and cfg.train.lr == 1e-3 and cfg.model.dim == 64


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("train:\n  stepz: 3\n", "unknown key train.stepz"),
        ("bogus: 1\n", "unknown key bogus"),
        ("train:\n  steps: three\n", "train.steps='three' must be of type int"),
        ("train:\n  schedule: exp\n", "train.schedule='exp' must be one of"),
        ("data:\n  mix: {ko: 0.5, en: 0.6, code: 0.0}\n", "sum to 1"),
        ("data:\n  sources:\n    - {name: a, path: x, lang: jp}\n", "data.sources[0].lang='jp'"),
        ("data:\n  sources:\n    - {path: x, lang: ko}\n", "data.sources[0].name is required"),
        ("train:\n  - 1\n", "train must be a mapping"),
    ],
)
def test_bad_config_names_the_key(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=None) as err:
        load_config(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_bad_override_is_an_error():
    with pytest.raises(ConfigError, match="unknown key train.nope"):
        load_config(None, ["train.nope=1"])
