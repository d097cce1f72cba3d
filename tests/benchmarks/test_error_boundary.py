"""The error boundary: only a validator's UsageError is "bad input" (one line, exit 2).

Anything else raised while a model is traced for validation is a bug in the model, its
initializer or its scheme, and keeps its traceback; ``--debug`` / ``INITBENCH_DEBUG=1`` show
the traceback of a usage error too.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from initbench.benchmarks import cli
from initbench.inits.errors import UsageError, first_line

TOML = textwrap.dedent(
    """
    name = "boundary"
    description = "one small run"
    init = "{init}"
    seeds = 1

    [[model]]
    {model}
    activation = "tanh"

    [data]
    name = "digits"
    batch_size = 16

    [train]
    optimizer = "sgd"
    lr = 0.05
    steps = 2
    eval_every = 2
    """
)


def experiment(tmp_path, init="he_normal", family="mlp"):
    path = tmp_path / "boundary.toml"
    model = 'family = "mlp"\ndepth = 2\nwidth = 8' if family == "mlp" else f'family = "{family}"'
    path.write_text(TOML.format(init=init, model=model))
    return str(path)


def broken_call(self, *args, **kwargs):
    raise ValueError("a bug inside the model's __call__")


def test_a_model_bug_during_run_validation_is_a_traceback_not_bad_input(tmp_path, monkeypatch):
    from initbench.models import mlp

    monkeypatch.setattr(mlp.MLP, "__call__", broken_call)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="a bug inside the model") as caught:
        cli.main(["run", experiment(tmp_path), "--out", str(out), "--quiet"])
    assert not isinstance(caught.value, UsageError)
    assert not out.exists()  # raised before the lock: nothing written


def test_a_model_bug_during_check_validation_is_a_traceback_not_bad_input(tmp_path, monkeypatch):
    from initbench.models import mlp

    monkeypatch.setattr(mlp.MLP, "__call__", broken_call)
    with pytest.raises(ValueError, match="a bug inside the model") as caught:
        cli.main(["check", "--depth", "3", "--width", "8", "--batch-size", "8", "--out", str(tmp_path / "o")])
    assert not isinstance(caught.value, UsageError)


def test_a_type_error_inside_a_scheme_is_a_traceback(tmp_path, monkeypatch):
    from initbench.inits import _model

    def broken_lsuv(*args, **kwargs):
        raise TypeError("a bug inside the scheme")

    monkeypatch.setattr(_model, "lsuv", broken_lsuv)
    with pytest.raises(TypeError, match="a bug inside the scheme") as caught:
        cli.main(["run", experiment(tmp_path, init="lsuv"), "--out", str(tmp_path / "out"), "--quiet"])
    assert not isinstance(caught.value, UsageError)


def test_wrong_init_arguments_found_while_tracing_are_one_line(tmp_path, capsys):
    # identity refuses a convolution kernel: the initializer's validator fires inside the trace
    out = tmp_path / "out"
    code = cli.main(["run", experiment(tmp_path, init="identity", family="lenet5"), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("initbench: error: ") and "identity takes kernels of at most 2 dims" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_debug_flag_shows_the_usage_error_traceback_and_its_cause(tmp_path, capsys):
    argv = ["run", experiment(tmp_path, init="identity", family="lenet5"), "--out", str(tmp_path / "o"), "--quiet"]
    assert cli.main([*argv, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "The above exception was the direct cause" in err  # the initializer's own error, where it fired
    assert "lenet.py" in err and "_core.py" in err  # the frames where it fired
    assert err.strip().splitlines()[-1].startswith("initbench: error: ")
    assert cli.main(["--debug", *argv]) == 2  # before the command too
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_debug_environment_variable_in_a_console_process(tmp_path):
    argv = [sys.executable, "-m", "initbench.benchmarks.cli", "run", "quick", "--init", "nope", "--out", str(tmp_path)]
    plain = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "INITBENCH_DEBUG": "0"})
    debug = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "INITBENCH_DEBUG": "1"})
    assert plain.returncode == debug.returncode == 2
    assert "Traceback" not in plain.stderr and len(plain.stderr.strip().splitlines()) == 1
    assert "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()


def test_first_line():
    assert first_line(UsageError("one\ntwo")) == "one"
    assert first_line(UsageError("")) == "UsageError"
