"""Reproductions: each end to end at smoke scale, and each claim checker on a case that must fail."""

import pandas as pd
import pytest

from initbench import inits
from initbench.benchmarks import cli
from initbench.benchmarks.reproduce import REPRODUCTIONS, init_histograms


@pytest.mark.slow  # test_a_claim_that_should_fail_does_fail runs the same pipeline by default
def test_init_histograms_end_to_end(tmp_path, capsys):
    assert cli.main(["reproduce", "init-histograms", "--scale", "smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "init-histograms (smoke): 5 claims not judged (smoke), 2/2 checks pass" in out
    assert "FAIL" not in out and "  not judged (smoke)  He keeps ReLU: factor" in out
    folder = tmp_path / "init-histograms"
    verdicts = pd.read_csv(folder / "verdicts.csv")
    assert verdicts["passed"].all() and len(verdicts) == 7
    rows = pd.read_parquet(folder / "measurements.parquet")
    assert set(rows["init"]) >= {"normal(0.01)", "normal(1.0)", "xavier", "he", "zeros", "constant(0.05)"}
    for name in ("histograms_tanh", "histograms_relu", "std_per_layer"):
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    import datetime
    import json

    meta = json.loads((folder / "provenance.json").read_text())  # the start is the start, not the write
    started, finished = (datetime.datetime.fromisoformat(meta[k]) for k in ("started_utc", "finished_utc"))
    assert abs((finished - started).total_seconds() - meta["wall_s"]) <= 1
    from initbench.benchmarks.reproduce import write_gallery

    gallery = write_gallery(tmp_path).read_text()
    assert "| [init-histograms](#init-histograms) | smoke | not judged (smoke) | - | 2/2 |" in gallery
    assert "init-histograms/histograms_tanh.png" in gallery
    assert "he2015" not in gallery  # only what was written


@pytest.mark.slow  # two whole reproductions for the exit code: ~20 s (claims() tests cover the must-fail cases)
def test_a_claim_that_should_fail_does_fail(monkeypatch, tmp_path, capsys):
    # Xavier in the place of He: "He keeps ReLU" must fail, with its numbers, and the command exits 1
    monkeypatch.setitem(init_histograms.INITS, "he", inits.lecun_normal)
    assert cli.main(["reproduce", "init-histograms", "--scale", "cpu", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "  FAIL  He keeps ReLU: factor 0." in out  # about 1/sqrt(2)
    verdicts = pd.read_csv(tmp_path / "init-histograms" / "verdicts.csv").set_index("name")
    assert not verdicts.loc["He keeps ReLU", "passed"] and verdicts.drop("He keeps ReLU")["passed"].all()
    # at smoke scale the same failure is recorded but not judged: the exit code follows the checks alone
    assert cli.main(["reproduce", "init-histograms", "--scale", "smoke", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "  not judged (smoke)  He keeps ReLU: factor 0." in out and "FAIL" not in out
    assert (
        not pd.read_csv(tmp_path / "s" / "init-histograms" / "verdicts.csv")
        .set_index("name")
        .loc["He keeps ReLU", "passed"]
    )


def test_smoke_judges_checks_and_not_claims():
    from initbench.benchmarks.reproduce import Claim, Reproduction

    claim = Claim("a claim", "says", "criterion", "measured", False)
    check = Claim("a check", "says", "criterion", "measured", True, kind="check", note="exact")
    for scale, passed in (("smoke", True), ("cpu", False)):
        result = Reproduction("r", scale, [claim, check], pd.DataFrame(), {})
        assert result.passed is passed
    smoke = Reproduction("r", "smoke", [claim, check], pd.DataFrame(), {}).markdown()
    assert "# r (smoke scale): 1 claims not judged (smoke), 1/1 checks pass" in smoke
    assert "| not judged (smoke) |" in smoke and "FAIL" not in smoke and "| check passes: exact |" in smoke
    failing_check = Claim("a check", "says", "criterion", "measured", False, kind="check", note="exact")
    broken = Reproduction("r", "smoke", [claim, failing_check], pd.DataFrame(), {})
    assert broken.passed is False and "**check FAILS**" in broken.markdown()
    assert "**FAIL**" in Reproduction("r", "cpu", [claim, check], pd.DataFrame(), {}).markdown()


@pytest.mark.parametrize("sub", ["", "inner"])
def test_out_that_is_a_file_fails_before_measuring(tmp_path, capsys, monkeypatch, sub):
    import initbench.benchmarks.reproduce as package

    monkeypatch.setattr(package, "reproduce", lambda *a: pytest.fail("measured before checking --out"))
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" / sub if sub else tmp_path / "f"
    assert cli.main(["reproduce", "init-histograms", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file, not a directory" in err and len(err.splitlines()) == 1


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


def constructed_derivation(scale, xavier=0.5, he=1.0, leaky=1.0, leaky_plain=1.25):
    rows = []
    for label, factor in (
        ("Xavier (1/n)", xavier),
        ("He (2/n)", he),
        ("leaky 0.5: He 2/((1+a^2)n)", leaky),
        ("leaky 0.5: He (2/n)", leaky_plain),
    ):
        for layer in range(1, 9):
            rows.append({"init": label, "layer": layer, "forward": factor**layer, "backward": factor ** (9 - layer)})
    return pd.DataFrame(rows)


def constructed_convergence(scale, leave=None):
    leave = leave or {
        (22, "he_normal"): 100,
        (22, "lecun_normal"): 400,
        (30, "he_normal"): 100,
        (30, "lecun_normal"): 10**9,
    }
    rows = []
    for (depth, init), at in leave.items():
        for step in range(0, 1001, 100):
            rows.append({"depth": depth, "init": init, "step": step, "value": 2.303 if step < at else 0.5})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("derivation", "convergence", "failing"),
    [
        ({}, {}, set()),
        ({"xavier": 0.7}, {}, {"forward: Xavier halves, He keeps", "backward: Xavier halves, He keeps"}),
        ({"leaky": 1.25}, {}, {"PReLU/leaky: 2/((1+a^2) n) keeps"}),
        (
            {},
            {
                "leave": {
                    (22, "he_normal"): 100,
                    (22, "lecun_normal"): 100,
                    (30, "he_normal"): 100,
                    (30, "lecun_normal"): 200,
                }
            },
            {"30 layers: Xavier stalls"},
        ),  # only 2x longer
        (
            {},
            {
                "leave": {
                    (22, "he_normal"): 300,
                    (22, "lecun_normal"): 100,
                    (30, "he_normal"): 100,
                    (30, "lecun_normal"): 10**9,
                }
            },
            {"22 layers: both converge, He first"},
        ),
    ],
)
def test_he2015_claims_on_constructed_measurements(monkeypatch, derivation, convergence, failing):
    from initbench.benchmarks.reproduce import he2015

    monkeypatch.setattr(he2015, "derivation", lambda scale: constructed_derivation(scale, **derivation))
    monkeypatch.setattr(he2015, "convergence", lambda scale: constructed_convergence(scale, **convergence))
    result = he2015.run("smoke")
    assert {c.name for c in result.claims if not c.passed} == failing, result.claims
    assert he2015.claims(result.measurements, "smoke") == result.claims  # a function of the stored rows
    assert set(result.figures) == {"derivation", "convergence"}


@pytest.mark.slow
def test_he2015_end_to_end_at_smoke_scale(tmp_path):
    code = cli.main(["reproduce", "he2015", "--scale", "smoke", "--out", str(tmp_path)])
    assert code in (0, 1)  # 20 steps decide nothing about convergence; the pipeline is what is tested
    verdicts = pd.read_csv(tmp_path / "he2015" / "verdicts.csv").set_index("name")
    assert verdicts.loc["forward: Xavier halves, He keeps", "passed"]  # the derivation holds at any size
    assert (tmp_path / "he2015" / "convergence.png").is_file()


def test_a_missing_dataset_is_one_line_before_any_measuring(tmp_path, capsys, monkeypatch):
    import initbench.benchmarks.reproduce as package
    from initbench.benchmarks import data

    monkeypatch.setattr(package, "reproduce", lambda *a: pytest.fail("measured before checking the data"))
    real = data.load

    def without_mnist(name, **kw):  # as on a machine without the MNIST files
        if name == "mnist":
            raise data.DataUnavailable("mnist: no IDX files in /nowhere; get it with --data-dir DIR")
        return real(name, **kw)

    from initbench.benchmarks.data import idx

    real_locate = idx.locate
    monkeypatch.setattr(data, "load", without_mnist)
    monkeypatch.setattr(idx, "locate", lambda name, *a: None if name == "mnist" else real_locate(name, *a))
    assert cli.main(["reproduce", "all", "--scale", "paper", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "he2015, lecun-selu, schoenholz2017, mishkin2016 at paper scale: mnist: no IDX files" in err, err
    assert len(err.splitlines()) == 1 and not (tmp_path / "o").exists()


def test_the_data_check_probes_idx_files_without_reading_them(monkeypatch):
    from initbench.benchmarks import data
    from initbench.benchmarks.data import idx
    from initbench.benchmarks.reproduce import check_data

    loads = []
    monkeypatch.setattr(data, "load", lambda name, **kw: loads.append(name))
    monkeypatch.setattr(idx, "locate", lambda name, *a: {"found": name} if name == "fashion_mnist" else None)
    check_data(["yang2022-transfer", "everett2024"], "cpu")  # Fashion-MNIST: located, never loaded
    assert loads == []
    with pytest.raises(data.DataUnavailable, match="yang2022-transfer, everett2024 at cpu scale: no copy"):
        monkeypatch.setattr(idx, "locate", lambda name, *a: None)
        monkeypatch.setattr(data, "load", lambda name, **kw: (_ for _ in ()).throw(data.DataUnavailable("no copy")))
        check_data(["yang2022-transfer", "everett2024"], "cpu")


@pytest.mark.parametrize("name", REPRODUCTIONS.names())
def test_the_declared_datasets_cover_what_the_module_loads_by_name(name):
    # every data.load("NAME") literal of the reproduction's module is among its declared datasets
    import importlib
    import inspect
    import re

    from initbench.benchmarks.data import DATASETS
    from initbench.benchmarks.reproduce import datasets

    module = importlib.import_module(REPRODUCTIONS[name].target.split(":")[0])
    declared = {d for s in REPRODUCTIONS[name].scales for d in datasets(name, s)}
    assert declared <= set(DATASETS.names())
    literal = set(re.findall(r"\bload\(\s*\"(\w+)\"", inspect.getsource(module)))
    assert literal <= declared, (literal, declared)
