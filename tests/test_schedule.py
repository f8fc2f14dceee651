import pytest

from gecko.train.schedule import lr_multiplier


@pytest.mark.parametrize("kind", ["cosine", "linear", "wsd"])
def test_warmup_then_decay_to_min(kind):
    values = [lr_multiplier(s, 100, 10, kind, 0.1) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert max(values) == pytest.approx(1.0)
    assert values[-1] == pytest.approx(0.1, abs=0.02)
    assert all(a >= b - 1e-12 for a, b in zip(values[10:], values[11:]))


def test_wsd_is_flat_until_the_last_fifth():
    assert lr_multiplier(79, 100, 10, "wsd", 0.0) == 1.0
    assert lr_multiplier(89, 100, 10, "wsd", 0.0) == pytest.approx(1 - 9 / 19)
