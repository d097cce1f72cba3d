import re
import subprocess
import sys

import pytest

from initbench import inits
from initbench.benchmarks import cli
from initbench.benchmarks.analysis.variance_table import variance_table


def test_list_prints_every_initializer(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for e in inits.available():
        assert e.name in out


@pytest.mark.slow  # a few seconds: in the slow run, which CI makes
def test_variance_table_measures_every_random_init_within_5_se():
    table = variance_table(seed=0)
    assert set(table["init"]) == {e.name for e in inits.available()}
    measured = table.dropna(subset=["z_variance"])
    assert len(measured) > 40
    assert (measured["z_variance"].abs() < 5).all(), measured[measured["z_variance"].abs() >= 5]


def test_console_script_bad_input_is_one_line_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "initbench.benchmarks.cli", "variance-table", "--seed", "x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "invalid int value: 'x'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_top_level_usage_names_every_command_and_run_flag():
    # the usage text is written by hand: it must not fall behind the parser
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, cli.argparse._SubParsersAction))
    usage = cli.__doc__
    for name, command in sub.choices.items():
        assert f"initbench {name}" in usage, name
        if name == "run":
            flags = {o for a in command._actions for o in a.option_strings if o.startswith("--")}
            missing = sorted(f for f in flags - {"--help", "--debug"} if not re.search(rf"{f}(?![\w-])", usage))
            assert not missing, missing
