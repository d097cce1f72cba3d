"""quick: init families x activations on a small MLP and LeNet-5 over seeds, on embedded digits.

The project's main job. It shows the classic effects on a real (small) task: zero init never
breaks symmetry, std 0.01 vanishes, std 1 saturates tanh and blows up ReLU, while LeCun,
Glorot, He, orthogonal and PyTorch's default train. Plain SGD, so the init is not masked by an
adaptive optimizer.
"""

from __future__ import annotations

from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, TrainSpec, options
from initbench.benchmarks.suites.base import Grid, Suite

ZEROS = InitSpec("zeros")
SMALL = InitSpec("normal", options(stddev=0.01))
LARGE = InitSpec("normal", options(stddev=1.0))
LECUN = InitSpec("lecun_normal")
GLOROT = InitSpec("glorot_uniform")
HE = InitSpec("he_normal")
ORTHOGONAL = InitSpec("orthogonal")
TORCH = InitSpec("torch_default", bias="torch_default")

MLP = ModelSpec("mlp", depth=3, width=128)
LENET = ModelSpec("lenet5")

SUITE = Suite(
    name="quick",
    description=__doc__.splitlines()[0],
    benchmark="init_x_activation",
    grids={
        "smoke": Grid(
            models=(ModelSpec("mlp", depth=2, width=32), LENET),
            inits=(ZEROS, GLOROT, HE),
            activations=("tanh", "relu"),
            data=DataSpec("digits", batch_size=64),
            train=TrainSpec("sgd", lr=0.05, steps=20, eval_every=10),
            seeds=2,
        ),
        "cpu": Grid(
            models=(MLP, LENET),
            inits=(ZEROS, SMALL, LARGE, LECUN, GLOROT, HE, ORTHOGONAL, TORCH),
            activations=("tanh", "relu"),
            data=DataSpec("digits", batch_size=64),
            train=TrainSpec("sgd", lr=0.05, steps=600, eval_every=50),
            seeds=3,
        ),
        "paper": Grid(
            models=(ModelSpec("mlp", depth=5, width=512), LENET),
            inits=(ZEROS, SMALL, LARGE, LECUN, GLOROT, HE, ORTHOGONAL, TORCH, InitSpec("glorot_standard")),
            activations=("tanh", "relu", "sigmoid", "selu"),
            data=DataSpec("digits", batch_size=64),
            train=TrainSpec("sgd", lr=0.05, steps=3000, eval_every=100),
            seeds=10,
        ),
    },
)
