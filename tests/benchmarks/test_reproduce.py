"""Reproductions: each end to end at smoke scale, and each claim checker on a case that must fail."""

import pandas as pd
import pytest

from initbench import inits
from initbench.benchmarks import cli
from initbench.benchmarks.reproduce import REPRODUCTIONS, init_histograms


def test_init_histograms_end_to_end(tmp_path, capsys):
    assert cli.main(["reproduce", "all", "--scale", "smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "init-histograms (smoke): 7/7 claims hold" in out
    folder = tmp_path / "init-histograms"
    verdicts = pd.read_csv(folder / "verdicts.csv")
    assert verdicts["passed"].all() and len(verdicts) == 7
    rows = pd.read_parquet(folder / "measurements.parquet")
    assert set(rows["init"]) >= {"normal(0.01)", "normal(1.0)", "xavier", "he", "zeros", "constant(0.05)"}
    for name in ("histograms_tanh", "histograms_relu", "std_per_layer"):
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    gallery = (tmp_path / "README.md").read_text()
    assert "init-histograms: 7/7 claims hold" in gallery and "init-histograms/histograms_tanh.png" in gallery


def test_a_claim_that_should_fail_does_fail(monkeypatch, tmp_path, capsys):
    # Xavier in the place of He: "He keeps ReLU" must fail, with its numbers, and the command exits 1
    monkeypatch.setitem(init_histograms.INITS, "he", inits.lecun_normal)
    assert cli.main(["reproduce", "init-histograms", "--scale", "smoke", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  He keeps ReLU: factor 0." in out  # about 1/sqrt(2)
    verdicts = pd.read_csv(tmp_path / "init-histograms" / "verdicts.csv").set_index("name")
    assert not verdicts.loc["He keeps ReLU", "passed"] and verdicts.drop("He keeps ReLU")["passed"].all()


def test_unknown_reproduction_is_one_line(capsys):
    assert cli.main(["reproduce", "glorot"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown reproduction 'glorot'" in err and len(err.splitlines()) == 1
    assert REPRODUCTIONS.names()[0] == "init-histograms"


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_propagation_is_the_plain_lecture_computation(activation):
    import jax
    import numpy as np

    x = jax.random.normal(jax.random.key(0), (16, 8))
    layers = init_histograms.propagate(inits.he_normal(), activation, x, jax.random.key(1))
    h = x
    for i, k in enumerate(jax.random.split(jax.random.key(1), init_histograms.DEPTH)):
        h = init_histograms.ACTIVATIONS[activation](h @ inits.he_normal()(k, (8, 8)))
        np.testing.assert_allclose(layers[i], np.asarray(h), rtol=1e-6)
