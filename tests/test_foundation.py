"""Cross-package contracts: errors, registries, layer names, lazy imports, caches."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits, models
from initbench.benchmarks import cli, data, experiments, train
from initbench.inits.errors import UsageError, UsageTypeError, positive_int
from initbench.inits.registry import Registry


@pytest.mark.parametrize("value", [True, False, 0, -3, 4.0, "4", None, np.float32(2)])
def test_positive_int_rejects_non_integers_and_bools(value):
    with pytest.raises(UsageError, match="must be a positive integer"):
        positive_int("n", value)


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(9)])
def test_positive_int_accepts_integers(value):
    assert positive_int("n", value) == int(value)
    assert type(positive_int("n", value)) is int


def test_usage_errors_are_value_errors_and_type_errors_where_typed():
    assert issubclass(UsageError, ValueError)
    assert issubclass(UsageTypeError, UsageError) and issubclass(UsageTypeError, TypeError)
    with pytest.raises(UsageTypeError, match="valid arguments: stddev, dtype, mean"):
        inits.get("normal", sigma=1.0)


@pytest.mark.parametrize(
    ("registry", "bad", "close"),
    [
        (inits.INITS, "he_normall", "he_normal"),
        (models.FAMILIES, "lenet", "lenet5"),
        (data.DATASETS, "digit", "digits"),
    ],
)
def test_every_registry_is_one_pattern_with_closest_match_errors(registry, bad, close):
    assert isinstance(registry, Registry)
    assert len(registry) == len(registry.names()) == len(registry.values()) > 0
    with pytest.raises(UsageError, match=f"Did you mean '{close}'"):
        registry[bad]


def test_unknown_experiment_names_the_closest():
    with pytest.raises(UsageError, match="Did you mean 'quick'"):
        experiments.load("quik")


def test_registry_targets_resolve():
    for e in inits.INITS.values():
        assert callable(e.factory)
    for e in models.FAMILIES.values():
        assert e.cls.__name__ in e.target
    for e in data.DATASETS.values():
        assert callable(e.loader) and isinstance(e.options, tuple)


def test_layer_names_have_one_owner_and_round_trip():
    assert models.layer_name(7) == "layer_007"
    assert models.stack_start(models.stack_name(12)) == 12
    assert models.stack_start("layer_001") is None and models.stack_start("stack_x") is None
    net = models.build(
        "mlp", input_shape=(4,), num_classes=3, depth=4, width=8, activation="tanh", kernel_init="he_normal", scan=True
    )
    x = jnp.ones((2, 4))
    variables = net.init(jax.random.key(0), x)
    assert set(variables["params"]) == {models.layer_name(0), models.stack_name(1), models.HEAD}
    _, state = net.apply(variables, x, mutable=["intermediates"])
    names = [layer["layer"] for layer in models.per_layer(state["intermediates"])]
    assert names == [models.layer_name(i) for i in range(4)] + [models.HEAD]


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["list", "inits"],
        ["list", "models"],
        ["list", "datasets"],
        ["list", "experiments"],
        ["list", "reproductions"],
        ["--version"],
    ],
)
def test_listing_and_help_import_no_jax(argv):
    script = (
        "import sys\n"
        "from initbench.benchmarks import cli\n"
        f"code = cli.main({argv!r})\n"
        "heavy = sorted(m for m in ('jax', 'flax', 'optax', 'tensorflow_datasets', 'pandas') if m in sys.modules)\n"
        "assert code == 0 and not heavy, (code, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_cli_bad_input_is_one_line_but_a_bug_keeps_its_traceback(monkeypatch, capsys):
    assert cli.main(["run", "quick", "--init", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown init" in err

    def broken(args):
        raise ValueError("internal bug, not bad input")

    monkeypatch.setattr(cli, "_cmd_list", broken)
    with pytest.raises(ValueError, match="internal bug"):
        cli.main(["list"])


def test_zeros_works_uncalled_like_jax_and_uncalled_factories_name_the_fix():
    import flax.linen as nn

    x = jnp.ones((2, 3))
    params = nn.Dense(4, bias_init=inits.zeros).init(jax.random.key(0), x)["params"]
    assert params["bias"].shape == (4,) and not params["bias"].any()
    assert inits.ones(jax.random.key(0), (2,), jnp.float32).tolist() == [1.0, 1.0]
    assert isinstance(inits.zeros(), inits.Init)
    with pytest.raises(UsageTypeError, match=r"kernel_init=inits.he_normal\(\)"):
        nn.Dense(4, kernel_init=inits.he_normal).init(jax.random.key(0), x)


def test_activation_metadata_drives_saturation_and_dead_units():
    tanh, sigmoid, relu = (inits.ACTIVATIONS[n] for n in ("tanh", "sigmoid", "relu"))
    assert tanh.saturated(jnp.array([0.995, -0.995, 0.5])).tolist() == [True, True, False]
    assert sigmoid.saturated(jnp.array([0.005, 0.995, 0.5])).tolist() == [True, True, False]
    assert relu.dies and not relu.saturating and not tanh.dies
    with pytest.raises(UsageError, match="does not saturate"):
        relu.saturated(jnp.zeros(2))


def test_bias_init_resolution_has_one_owner():
    torch_bias = inits.get_bias("torch_default", fan_in=16)
    assert torch_bias.target((8,)) == (0.0, pytest.approx(1 / (3 * 16)))
    assert inits.get_bias("normal", fan_in=16, stddev=0.5).target((8,)) == (0.0, 0.25)
    with pytest.raises(UsageTypeError, match="takes no arguments"):
        inits.get_bias("torch_default", fan_in=16, stddev=1.0)


def test_compiled_caches_are_bounded_and_clearable():
    cache = train._LRU(2)
    made = []
    for key in ("a", "b", "a", "c"):
        cache.get(key, lambda key=key: made.append(key) or key)
    assert made == ["a", "b", "c"] and len(cache) == 2  # "b" was least recently used
    cache.get("a", lambda: made.append("again"))
    assert "again" not in made
    train.clear_caches()
    assert len(train._INIT_CACHE) == len(train._PROGRAM_CACHE) == 0


def test_batched_data_keys_equal_per_seed_keys():
    seeds = [0, 1, 7, 2**31 - 1]
    batched = train._data_keys(jnp.asarray(seeds, jnp.uint32))
    for i, seed in enumerate(seeds):
        np.testing.assert_array_equal(
            np.asarray(jax.random.key_data(batched[i])), np.asarray(jax.random.key_data(train.run_keys(seed)[1]))
        )


@pytest.mark.parametrize("seed", [-1, 2**32, 1.0])
def test_a_seed_outside_uint32_is_refused(seed):
    from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec

    spec = RunSpec(
        "t", "t", ModelSpec("mlp", "relu", 2, 8), InitSpec("he_normal"), DataSpec("digits"), TrainSpec(), seed
    )
    with pytest.raises(UsageError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
        spec.validate()
