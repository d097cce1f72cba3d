"""Reproductions of the classic initialization papers: figures plus claims checked as verdicts.

Each reproduction is a function ``run(scale, out) -> Reproduction`` registered in
:data:`REPRODUCTIONS` (``initbench reproduce NAME``). It measures, draws its figures in the
paper's form, and checks each claim quantitatively: "paper says / we measure / pass", with the
numbers. :func:`write` stores a reproduction as ``DIR/NAME/``: ``verdicts.md`` and
``verdicts.csv`` (one row per claim), ``measurements.parquet`` (tidy rows) and the PNG figures.
A failed claim is a finding: the verdict table says so with the numbers, and the command
exits 1.

Scales: ``smoke`` (seconds, for tests), ``cpu`` (minutes on 2 cores), ``full`` (the paper's
setup as far as it fits a 2-core CPU: real data, the paper's widths, depths and budget; tens of
minutes; only the reproductions that declare it, :attr:`Entry.scales`), ``paper`` (the paper's
sizes, for accelerators). A ``smoke`` or ``cpu`` run is written to ``OUT/NAME/``, a ``full`` or
``paper`` one beside it to ``OUT/NAME-full/`` or ``OUT/NAME-paper/`` (:func:`folder_name`), so
the gallery keeps both and shows each paper at its most faithful scale.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench.inits.errors import UsageError, first_line, unknown_choice
from initbench.inits.registry import Registry, resolve

if TYPE_CHECKING:
    import pandas as pd

SCALES = ("smoke", "cpu", "full", "paper")
EVERY = ("smoke", "cpu", "paper")  # the scales every reproduction has; ``full`` where its paper's setup fits here
FAITHFUL = ("paper", "full", "cpu", "smoke")  # the gallery shows the first of these that is written


def folder_name(name: str, scale: str) -> str:
    """The folder of reproduction ``name`` at ``scale`` under an output directory.

    Example:
      >>> folder_name("he2015", "cpu"), folder_name("he2015", "full")
      ('he2015', 'he2015-full')
    """
    if scale not in SCALES:
        raise unknown_choice("scale", scale, SCALES)
    return name if scale in ("smoke", "cpu") else f"{name}-{scale}"


KINDS = ("claim", "check")


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of a paper, checked.

    Attributes:
      name: Short identifier.
      paper_says: The claim as the paper (or the lecture) states it.
      criterion: The quantitative test applied.
      measured: What was measured, with the numbers.
      passed: Whether the measurement satisfies the criterion.
      kind: ``claim`` (a test of the paper: a wrong result could fail it) or ``check`` (a property
        that a correct implementation cannot fail, such as zero init's symmetry or a constraint
        the method enforces: reported, but not counted as evidence for the paper).
      note: Why a ``check`` cannot fail; for a passing ``claim``, why the pass is weak (the
        direction is right but the size is far from the paper's): its verdict is ``weak pass``.
    """

    name: str
    paper_says: str
    criterion: str
    measured: str
    passed: bool
    kind: str = "claim"
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise unknown_choice("claim kind", self.kind, KINDS)
        object.__setattr__(self, "passed", bool(self.passed))

    @property
    def verdict(self) -> str:
        """``pass``, ``weak pass`` or ``FAIL`` for a claim; ``check passes`` or ``check FAILS`` for a check."""
        if self.kind == "check":
            return "check passes" if self.passed else "check FAILS"
        return ("weak pass" if self.note else "pass") if self.passed else "FAIL"


@dataclasses.dataclass
class Reproduction:
    """The outcome of a reproduction.

    Attributes:
      name: Its registry name.
      scale: The scale it ran at.
      claims: The checked claims.
      measurements: Tidy rows of what was measured.
      figures: Name -> matplotlib figure (written by :func:`write`).
      seconds: Wall time.
    """

    name: str
    scale: str
    claims: list[Claim]
    measurements: pd.DataFrame
    figures: dict[str, Any]
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Every claim holds and every check passes; at ``smoke`` scale every check passes (claims are not judged)."""
        return all(c.passed for c in self.claims if c.kind == "check" or self.scale != "smoke")

    def markdown(self) -> str:
        """The verdict table."""
        claims = [c for c in self.claims if c.kind == "claim"]
        checks = [c for c in self.claims if c.kind == "check"]
        lines = [
            f"# {self.name} ({self.scale} scale): {summary(claims, checks, self.scale)}",
            "",
            f"Wall time {self.seconds:.1f} s. Reproduce: `initbench reproduce {self.name} --scale {self.scale}`.",
            "",
            "| claim | paper says | criterion | we measure | verdict |",
            "|---|---|---|---|---|",
        ]
        for c in self.claims:
            lines.append(f"| {c.name} | {c.paper_says} | {c.criterion} | {c.measured} | {shown(c, self.scale)} |")
        lines += ["", *(f"![{name}]({name}.png)" for name in self.figures), ""]
        return "\n".join(lines)


NOT_JUDGED = "not judged (smoke)"  # a claim at smoke scale: toy sizes wire the pipeline and decide nothing


def summary(claims: list[Claim], checks: list[Claim], scale: str | None = None) -> str:
    """``5/7 claims hold (1 weak), 2/2 checks pass``; at ``smoke`` scale ``7 claims not judged (smoke), ...``.

    Example:
      >>> c = Claim("c", "says", "criterion", "measured", False)
      >>> summary([c], []), summary([c], [], "smoke")
      ('0/1 claims hold', '1 claims not judged (smoke)')
    """
    if scale == "smoke":
        text = f"{len(claims)} claims {NOT_JUDGED}"
    else:
        held = sum(c.passed for c in claims)
        weak = sum(c.passed and bool(c.note) for c in claims)
        text = f"{held}/{len(claims)} claims hold" + (f" ({weak} weak)" if weak else "")
    return text + (f", {sum(c.passed for c in checks)}/{len(checks)} checks pass" if checks else "")


def shown(claim: Claim, scale: str | None = None) -> str:
    """A verdict as shown: FAIL in bold, a weak pass or a check with its reason; a smoke-scale claim not judged."""
    if scale == "smoke" and claim.kind == "claim":
        return NOT_JUDGED
    verdict, note = claim.verdict, claim.note
    cell = f"**{verdict}**" if "FAIL" in verdict else verdict
    return f"{cell}: {note}" if note and verdict != "FAIL" else cell


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered reproduction.

    Attributes:
      name: Its registry name (``initbench reproduce NAME``, the gallery folder).
      target: ``"module:function"`` of ``run(scale) -> Reproduction``.
      description: One line.
      judge: ``"module:function"`` of the pure ``claims(measurements, scale) -> list[Claim]`` that
        ``run`` applies to the very frame it returns: the verdicts are a function of the stored
        measurements, so :func:`rederive` can check a written folder against the code.
      scales: The scales it runs at: :data:`EVERY`, plus ``full`` where the paper's setup fits
        a 2-core CPU.
      data: The paper's data and what stands in for it here (real or generated), one line: the
        gallery shows it with the reproduction.
    """

    name: str
    target: str
    description: str
    judge: str = ""
    scales: tuple[str, ...] = EVERY
    data: str = ""

    def __post_init__(self) -> None:
        if not self.judge:  # the module's own ``claims``
            object.__setattr__(self, "judge", self.target.split(":")[0] + ":claims")
        if any(s not in SCALES for s in self.scales) or any(s not in self.scales for s in EVERY):
            raise ValueError(f"reproduction {self.name}: scales {self.scales} must hold {EVERY} and only {SCALES}")

    def check_scale(self, scale: str) -> None:
        """Raises one line when the reproduction has no such scale (before any work)."""
        if scale not in SCALES:
            raise unknown_choice("scale", scale, SCALES)
        if scale not in self.scales:
            raise UsageError(
                f"reproduction {self.name} has no {scale!r} scale (its paper's setup does not fit a 2-core CPU);"
                f" its scales: {', '.join(self.scales)}"
            )

    @property
    def run(self) -> Callable[[str], Reproduction]:
        """``run(scale) -> Reproduction``."""
        return resolve(self.target)

    @property
    def claims(self) -> Callable[[pd.DataFrame, str], list[Claim]]:
        """``claims(measurements, scale) -> list[Claim]``: the verdicts from the measurements alone."""
        return resolve(self.judge)


REPRODUCTIONS: Registry[Entry] = Registry(
    "reproduction",
    (
        Entry(
            "init-histograms",
            "initbench.benchmarks.reproduce.init_histograms:run",
            "10 tanh/ReLU layers of 500 units: std 0.01 collapses, std 1 saturates, Xavier and He keep the signal;"
            " zero init stays symmetric",
            data="the lecture's Gaussian inputs (randn), as here; the symmetry runs train on 8x8 digits",
        ),
        Entry(
            "he2015",
            "initbench.benchmarks.reproduce.he2015:run",
            "He et al. 2015: ReLU variance halves per layer with 1/n, kept with 2/n (forward and backward);"
            " 22- and 30-layer convergence",
            scales=("smoke", "cpu", "full", "paper"),
            data="the paper's ImageNet cannot be had offline: 8x8 digits (cpu) and Fashion-MNIST, 60k real 28x28"
            " images (full) stand in",
        ),
        Entry(
            "glorot2010",
            "initbench.benchmarks.reproduce.glorot2010:run",
            "Glorot & Bengio 2010: standard U[-1/sqrt(n), 1/sqrt(n)] vs normalized init on 5 tanh layers"
            " (activation, back-propagated and weight-gradient histograms), sigmoid saturation, Table 1",
            data="Shapeset-3x2 and sparse 300-d inputs, generated here as in the paper; Table 1's MNIST,"
            " CIFAR-10 and ImageNet rows are not run",
        ),
        Entry(
            "lecun-selu",
            "initbench.benchmarks.reproduce.lecun_selu:run",
            "LeCun 1998's scaled tanh and SELU (Klambauer 2017) with LeCun normal keep mean 0 and variance 1"
            " over 64 layers; ReLU vanishes, tanh decays like 1/(2l); SELU self-normalizes in training",
            scales=("smoke", "cpu", "full", "paper"),
            data="the propagation claims need no data (Gaussian inputs, as in the papers); SELU's training claim"
            " (the paper's Fig. 1: MNIST, CIFAR-10) uses 8x8 digits (cpu) and Fashion-MNIST, 60k real 28x28 images"
            " (full)",
        ),
        Entry(
            "saxe2014",
            "initbench.benchmarks.reproduce.saxe2014:run",
            "Saxe et al. 2014: singular values of Gaussian vs orthogonal matrix products with depth;"
            " deep linear nets train in depth-independent time with orthogonal init",
            scales=("smoke", "cpu", "full", "paper"),
            data="Gaussian matrices and a synthetic linear regression task, as in the paper's analysis; its MNIST"
            " runs are not reproduced (full MNIST cannot be had offline)",
        ),
        Entry(
            "schoenholz2017",
            "initbench.benchmarks.reproduce.schoenholz2017:run",
            "Schoenholz et al. 2017: tanh order-to-chaos phase diagram, depth scales xi_q and xi_c,"
            " trainable only where depth < ~6 xi_c",
            data="the paper's MNIST and CIFAR-10 trainability grids: 8x8 digits stand in",
        ),
        Entry(
            "pennington2017",
            "initbench.benchmarks.reproduce.pennington2017:run",
            "Pennington et al. 2017: dynamical isometry: Jacobian singular-value spread of orthogonal vs Gaussian"
            " critical tanh and ReLU nets, theory and measurement; orthogonal deep tanh trains faster",
            scales=("smoke", "cpu", "full", "paper"),
            data="the Jacobian spectra need no data; the paper's CIFAR-10 training: 8x8 digits (cpu) and"
            " Fashion-MNIST, 60k real 28x28 images (full) stand in",
        ),
        Entry(
            "xiao2018",
            "initbench.benchmarks.reproduce.xiao2018:run",
            "Xiao et al. 2018: delta-orthogonal convolutions are isometric; a deep vanilla tanh CNN trains with"
            " delta-orthogonal init where the Gaussian one is slower",
            scales=("smoke", "cpu", "full", "paper"),
            data="the isometry needs no data; the paper's MNIST and CIFAR-10 training: 8x8 digits stand in (at"
            " full scale too: the training part stays at the cpu scale's size)",
        ),
        Entry(
            "mishkin2016",
            "initbench.benchmarks.reproduce.mishkin2016:run",
            "Mishkin & Matas 2016: LSUV brings every layer of deep MLPs/CNNs to unit variance (tanh in ~1"
            " iteration, ReLU in a few) and trains deep nets that orthonormal init alone does not",
            data="the paper's CIFAR-10 and ImageNet: 8x8 digits stand in",
        ),
        Entry(
            "zhang2019",
            "initbench.benchmarks.reproduce.zhang2019:run",
            "Zhang et al. 2019: a no-normalization ResNet explodes with He init; Fixup keeps per-block variance"
            " flat, starts at ln(classes) and trains; depth sweep of early accuracy vs BatchNorm and SkipInit",
            data="the paper's CIFAR-10 cannot be had offline: Gaussian 8x8x3 inputs at init, 8x8 digits in training",
        ),
        Entry(
            "zhao2021",
            "initbench.benchmarks.reproduce.zhao2021:run",
            "Zhao et al. 2021: ZerO (identity/Hadamard, deterministic) trains as well as random init; the rank"
            " of W - I stays bounded under partial-identity init and ZerO's Hadamard breaks it",
            data="the paper's CIFAR-10 and ImageNet: 8x8 digits stand in",
        ),
        Entry(
            "dauphin2019",
            "initbench.benchmarks.reproduce.dauphin2019:run",
            "Dauphin & Schoenholz 2019: MetaInit lowers the gradient quotient and rescues a badly scaled deep"
            " net to within the accuracy of a good init",
            data="the paper's CIFAR-10: 8x8 digits stand in",
        ),
        Entry(
            "yang2022-coord",
            "initbench.benchmarks.reproduce.yang2022_coord:run",
            "Yang et al. 2022 (muP): the coordinate check with Adam: every layer width-stable under muP, some"
            " growing with width under SP (MLP and ResNet)",
            data="the paper's CIFAR-10 and text models: 8x8 digits stand in (the check reads activations, not"
            " accuracy)",
        ),
        Entry(
            "yang2022-transfer",
            "initbench.benchmarks.reproduce.yang2022_transfer:run",
            "Yang et al. 2022 (muTransfer): training loss against Adam's learning rate at widths 64..1024 on"
            " Fashion-MNIST: the optimum moves with width under SP and stays under muP",
            "initbench.benchmarks.reproduce.yang2022_transfer:transfer_claims",
            data="the paper's CIFAR-10 cannot be had offline: Fashion-MNIST, 60k real 28x28 images, stands in",
        ),
        Entry(
            "wider-is-better",
            "initbench.benchmarks.reproduce.yang2022_transfer:run_wider",
            "Yang et al. 2022: the learning rate tuned at width 64 transferred to widths up to 2048: under muP"
            " wider is better throughout training, under SP the widest is worse",
            "initbench.benchmarks.reproduce.yang2022_transfer:wider_claims",
            data="the paper's CIFAR-10 cannot be had offline: Fashion-MNIST, 60k real 28x28 images, stands in",
        ),
        Entry(
            "depth-mup",
            "initbench.benchmarks.reproduce.depth_mup:run",
            "Yang et al. 2023 (TP6, Depth-muP): Adam's optimal learning rate across ResNet depths 1..8 on digits:"
            " stable with branches x L^-1/2, drifting without",
            data="the paper's CIFAR-10: 8x8 digits stand in",
        ),
        Entry(
            "everett2024",
            "initbench.benchmarks.reproduce.everett2024:run",
            "Everett et al. 2024: per-layer optimal Adam learning-rate exponents under SP at widths 64..1024 on"
            " Fashion-MNIST, fitted and set against the table's full- and no-alignment predictions",
            data="the paper's C4 text with Transformers: Fashion-MNIST with an MLP stands in",
        ),
        Entry(
            "zhu2021",
            "initbench.benchmarks.reproduce.zhu2021:run",
            "Zhu et al. 2021: GradInit's learned scales rescue a badly scaled deep net to within the accuracy of a"
            " good init, with the first step's gradient norm bounded",
            data="the paper's CIFAR-10 and ImageNet: 8x8 digits stand in",
        ),
    ),
)


def _module(name: str) -> Any:
    import importlib

    return importlib.import_module(f"initbench.benchmarks.reproduce.{name}")


def _experiment_data(experiment: str, scale: str) -> tuple[str, ...]:
    from initbench.benchmarks import experiments

    plan = experiments.resolve(experiments.load(experiment), scale)
    return tuple(dict.fromkeys(s.data.name for s in plan.full))


# what each reproduction reads at a scale (its setup tables and experiments; tested against them)
_DATA: dict[str, Callable[[str], tuple[str, ...]]] = {
    "init-histograms": lambda s: ("digits",),
    "he2015": lambda s: _experiment_data("he2015-depth30", s),
    "glorot2010": lambda s: ("sparse", "shapeset", *_experiment_data("glorot2010-table1", s)),
    "lecun-selu": lambda s: (_module("lecun_selu").SIZES[s]["training"][5],),
    "saxe2014": lambda s: (),
    "schoenholz2017": lambda s: (_module("schoenholz2017").SIZES[s].train_dataset,),
    "pennington2017": lambda s: (_module("pennington2017").SIZES[s].train_dataset,),
    "xiao2018": lambda s: ("digits",),
    "mishkin2016": lambda s: ("digits", *_experiment_data("mishkin2016", s)),
    "zhang2019": lambda s: _experiment_data("zhang2019-depth", s),
    "zhao2021": lambda s: ("digits", *_experiment_data("zhao2021", s)),
    "dauphin2019": lambda s: _experiment_data("dauphin2019-rescue", s),
    "yang2022-coord": lambda s: ("digits",),
    "yang2022-transfer": lambda s: (_module("yang2022_transfer").SETUP[s]["data"],),
    "wider-is-better": lambda s: (_module("yang2022_transfer").SETUP[s]["data"],),
    "depth-mup": lambda s: (_module("depth_mup").SETUP[s]["data"],),
    "zhu2021": lambda s: _experiment_data("zhu2021-rescue", s),
    "everett2024": lambda s: (_module("everett2024").SETUP[s]["data"],),
}


def datasets(name: str, scale: str) -> tuple[str, ...]:
    """The datasets reproduction ``name`` reads at ``scale`` (each once, in order)."""
    entry = REPRODUCTIONS[name]
    entry.check_scale(scale)
    return tuple(dict.fromkeys(_DATA[entry.name](scale)))


def check_data(names: list[str], scale: str) -> None:
    """Raises one line, before any measuring, when a dataset these reproductions read at ``scale`` is missing.

    Generated and shipped datasets are always there; IDX datasets whose four files are found
    (``data.idx.locate``: no reading) are there; the others (TFDS) are loaded once here, so a
    missing one names how to get it instead of failing after minutes of work.
    """
    from initbench.benchmarks import data
    from initbench.benchmarks.data import idx

    needed = dict.fromkeys(d for n in names for d in datasets(n, scale))
    for name in needed:
        if name in idx.SYSTEM_DIRS and idx.locate(name) is not None:
            continue  # the files are there: the reproduction reads them (a probe, not a second load)
        if not data.entry(name).offline:
            try:
                data.load(name)
            except data.DataUnavailable as err:
                users = [n for n in names if name in datasets(n, scale)]
                raise data.DataUnavailable(f"{', '.join(users)} at {scale} scale: {first_line(err)}") from None


def reproduce(name: str, scale: str = "cpu") -> Reproduction:
    """Runs one reproduction at a scale (measures and checks; writes nothing).

    Its datasets are checked first (:func:`check_data`): a missing one is one line, not a
    failure after the reproduction's first parts.
    """
    entry = REPRODUCTIONS[name]
    entry.check_scale(scale)
    check_data([entry.name], scale)
    t0 = time.perf_counter()
    result = entry.run(scale)
    result.seconds = time.perf_counter() - t0
    return result


def rederive(folder: str | Path) -> list[Claim]:
    """The claims of a written reproduction folder, re-derived from its ``measurements.parquet``.

    Applies the registered ``claims(measurements, scale)`` of the folder's reproduction (named in its
    ``provenance.json``, with its scale) to the stored measurements. Equal to the folder's
    ``verdicts.csv`` when the folder was written by this code: the gallery test checks every
    committed folder this way.

    Args:
      folder: ``OUT/NAME`` as :func:`write` made it.

    Raises:
      UsageError: The folder lacks its provenance or measurements, or names no known reproduction.
    """
    import pandas as pd

    folder = Path(folder)
    meta_file, rows_file = folder / "provenance.json", folder / "measurements.parquet"
    for f in (meta_file, rows_file):
        if not f.is_file():
            raise UsageError(f"{str(folder)!r} is not a written reproduction: it has no {f.name}")
    try:
        meta = json.loads(meta_file.read_text())
    except (ValueError, OSError) as err:
        raise UsageError(f"{str(meta_file)!r} is not readable JSON ({type(err).__name__}: {err})") from None
    if not isinstance(meta, dict):
        raise UsageError(f"{str(meta_file)!r} holds a {type(meta).__name__}, not a reproduction's provenance")
    if meta.get("scale") not in SCALES:
        raise unknown_choice("scale", meta.get("scale"), SCALES)
    entry = REPRODUCTIONS[str(meta.get("reproduction"))]
    entry.check_scale(meta["scale"])
    if (owner := _owner(folder.name)) is not None and folder.name != folder_name(entry.name, meta["scale"]):
        raise UsageError(
            f"{str(folder)!r} holds reproduction {entry.name} at {meta['scale']} scale (its provenance.json), whose "
            f"folder is {folder_name(entry.name, meta['scale'])!r}, not {folder.name!r} ({owner}'s): re-judging it "
            "there would relabel its verdicts"
        )
    try:
        rows = pd.read_parquet(rows_file)
    except Exception as err:  # pyarrow's errors for a truncated or foreign file
        raise UsageError(f"{str(rows_file)!r} is not a readable parquet file ({type(err).__name__})") from None
    try:
        return entry.claims(rows, meta["scale"])
    except (KeyError, IndexError) as err:  # the measurements of another reproduction, or none
        raise UsageError(
            f"{str(rows_file)!r} does not hold {entry.name}'s measurements ({type(err).__name__}: {err})"
        ) from None


def rejudge(folder: str | Path) -> list[Claim]:
    """Re-judges a written folder with this code's claims, without measuring: rewrites its verdicts.

    For a change of criteria only (the measurement code unchanged, so the stored measurements are
    what this code would measure): :func:`rederive` gives the claims, ``verdicts.csv`` and
    ``verdicts.md`` are rewritten, and ``provenance.json`` gains ``judged_commit`` and
    ``judged_utc`` beside the commit that measured (``git_commit``), so the gallery says both.

    Returns:
      The claims now in the folder.
    """
    import pandas as pd

    from initbench.benchmarks.results import provenance

    folder = Path(folder)
    claims = rederive(folder)
    meta = json.loads((folder / "provenance.json").read_text())
    now = provenance()
    meta = {**meta, "judged_commit": now["git_commit"], "judged_utc": now["started_utc"]}
    figures = {p.stem: None for p in sorted(folder.glob("*.png"))}
    result = Reproduction(meta["reproduction"], meta["scale"], claims, pd.DataFrame(), figures, meta.get("wall_s", 0.0))
    pd.DataFrame([dataclasses.asdict(c) for c in claims]).to_csv(folder / "verdicts.csv", index=False)
    (folder / "verdicts.md").write_text(result.markdown())
    (folder / "provenance.json").write_text(json.dumps(meta, indent=2, default=str))
    return claims


def _owner(folder: str) -> str | None:
    """The reproduction whose folder name (at some scale) ``folder`` is, else None."""
    for entry in REPRODUCTIONS.values():
        if folder in {folder_name(entry.name, s) for s in entry.scales}:
            return entry.name
    return None


def folders(out: str | Path, name: str) -> dict[str, Path]:
    """Scale -> the written folder of reproduction ``name`` under ``out``, most faithful scale first.

    A ``NAME/`` folder holds a ``smoke`` or a ``cpu`` run (its provenance says which).
    """
    out, entry = Path(out), REPRODUCTIONS[name]
    found: dict[str, Path] = {}
    for folder in dict.fromkeys(out / folder_name(entry.name, s) for s in entry.scales):
        if (folder / "verdicts.csv").is_file():
            try:
                scale = json.loads((folder / "provenance.json").read_text()).get("scale", "?")
            except (OSError, ValueError, AttributeError):  # missing or unreadable: rederive says so in one line
                scale = "?"
            found[str(scale) if scale in SCALES else f"? {folder.name}"] = folder
    return dict(sorted(found.items(), key=lambda kv: FAITHFUL.index(kv[0]) if kv[0] in FAITHFUL else len(FAITHFUL)))


def _provenance(folder: Path) -> dict[str, Any]:
    """A written folder's provenance; empty when missing or unreadable (the page shows ``?``, never a traceback)."""
    try:
        meta = json.loads((folder / "provenance.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _commits(meta: dict[str, Any]) -> str:
    """``abc1234567`` (measured and judged there) or ``measured abc1234567, judged def7654321``."""
    measured, judged = str(meta.get("git_commit"))[:10], str(meta.get("judged_commit", meta.get("git_commit")))[:10]
    return measured if judged == measured else f"measured {measured}, judged {judged}"


def write(result: Reproduction, out: str | Path) -> Path:
    """Writes ``out/NAME/`` (``out/NAME-full/`` ...: :func:`folder_name`): verdicts, measurements, figures."""
    import matplotlib.pyplot as plt
    import pandas as pd

    folder = Path(out) / folder_name(result.name, result.scale)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create {str(folder)!r}: {err.strerror or err}") from None
    for name, fig in result.figures.items():
        fig.savefig(folder / f"{name}.png", dpi=100)
        plt.close(fig)
    pd.DataFrame([dataclasses.asdict(c) for c in result.claims]).to_csv(folder / "verdicts.csv", index=False)
    result.measurements.to_parquet(folder / "measurements.parquet", index=False)
    from initbench.benchmarks.results import provenance

    meta = provenance()
    finished = datetime.datetime.fromisoformat(meta["started_utc"])  # provenance() is taken now, at the end
    meta["started_utc"] = (finished - datetime.timedelta(seconds=round(result.seconds))).isoformat()
    meta = {
        **meta,
        "finished_utc": finished.isoformat(),
        "reproduction": result.name,
        "scale": result.scale,
        "wall_s": round(result.seconds, 2),
        "command": f"initbench reproduce {result.name} --scale {result.scale}",
    }
    (folder / "provenance.json").write_text(json.dumps(meta, indent=2, default=str))
    (folder / "verdicts.md").write_text(result.markdown())
    return folder


def read_verdicts(folder: str | Path) -> list[Claim]:
    """The claims of a written folder's ``verdicts.csv`` (older folders, without ``kind``/``note``: plain claims)."""
    import pandas as pd

    table = pd.read_csv(Path(folder) / "verdicts.csv", keep_default_na=False, dtype=str)
    return [
        Claim(
            r["name"],
            r["paper_says"],
            r["criterion"],
            r["measured"],
            r["passed"] == "True",
            r.get("kind") or "claim",
            r.get("note") or "",
        )
        for r in table.to_dict("records")
    ]


def write_gallery(out: str | Path) -> Path:
    """``out/README.md``: every reproduction written under ``out``, indexed, with its criteria and figures.

    The page opens with an index: one row per reproduction at its most faithful written scale
    (:data:`FAITHFUL`: ``full`` before ``cpu``), its claims held, the failing claims, checks, the
    wall time at each written scale, and the commit. Then one section per reproduction: the most
    faithful scale's table, which shows each claim's criterion beside what the paper says and what
    was measured, and its verdict: ``pass``, ``weak pass`` (with why), ``FAIL``, or for a check (a
    property a correct implementation cannot fail, not counted as evidence for the paper)
    ``check passes`` (with why it is one); below it the other written scales' tables. Only what
    the folders hold is read, so the page can be rewritten at any time without measuring.
    """
    out = Path(out)
    lines = [
        "# Reproductions gallery",
        "",
        f"Regenerate: `initbench reproduce all --scale cpu --out {out}`, and `--scale full` for the reproductions "
        "that have a full scale (the paper's setup as far as it fits a 2-core CPU: written beside the cpu folder "
        "as `NAME-full/`). Each folder holds the verdict table "
        "(`verdicts.md`, `verdicts.csv`), the tidy measurements (`measurements.parquet`), the provenance "
        "(`provenance.json`: versions, commit, wall time, command) and the figures. Every verdict is a "
        "function of the folder's measurements (`initbench.benchmarks.reproduce.rederive`); a test "
        "re-derives each committed one. A *claim* tests the paper (a wrong result could fail it); a "
        "*check* is a property a correct implementation cannot fail (zero init's symmetry, a constraint "
        "the method enforces): it is shown, not counted. A *weak pass* has the paper's direction but "
        "not its size. Each reproduction is counted and shown first at its most faithful written scale.",
        "",
    ]
    written = {e.name: f for e in REPRODUCTIONS.values() if (f := folders(out, e.name))}
    tables = {(n, s): read_verdicts(p) for n, by in written.items() for s, p in by.items()}
    metas = {(n, s): _provenance(p) for n, by in written.items() for s, p in by.items()}
    claims_of = {k: [c for c in t if c.kind == "claim"] for k, t in tables.items()}
    checks_of = {k: [c for c in t if c.kind == "check"] for k, t in tables.items()}
    top = {n: (n, next(iter(by))) for n, by in written.items()}  # the most faithful written scale
    if written:
        every = [c for n, k in top.items() if k[1] != "smoke" for c in claims_of[k]]  # smoke judges no claim
        checks = [c for k in top.values() for c in checks_of[k]]
        lines += [
            f"**{summary(every, checks)}** over {len(written)} reproductions, each at its most faithful written"
            f" scale; measuring took {sum(m.get('wall_s', 0.0) for m in metas.values()) / 60:.1f} min in all (the"
            " sum of the wall times below). A failed claim is a finding: its row says what was measured.",
            "",
            "| reproduction | scale | claims held | failing claims | checks | wall time cpu (s) | wall time full (s)"
            " | commit |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, key in top.items():
            claims, checks, meta = claims_of[key], checks_of[key], metas[key]
            smoke = key[1] == "smoke"
            failing = "; ".join(c.name for c in (*claims, *checks) if not c.passed and not (smoke and c in claims))
            weak = sum(c.passed and bool(c.note) for c in claims)
            held = NOT_JUDGED if smoke else f"{sum(c.passed for c in claims)}/{len(claims)}"
            wall = {s: metas[name, s].get("wall_s", "?") for s in written[name]}
            lines.append(
                f"| [{name}](#{name}) | {key[1]} | {held}"
                f"{f' ({weak} weak)' if weak and not smoke else ''} | {failing or '-'} |"
                f" {f'{sum(c.passed for c in checks)}/{len(checks)}' if checks else '-'} | {wall.get('cpu', '-')}"
                f" | {wall.get('full', '-')} | {_commits(meta)} |"
            )
        lines.append("")
    for name, by in written.items():
        entry = REPRODUCTIONS[name]
        for rank, (scale, folder) in enumerate(by.items()):
            key, meta = (name, scale), metas[name, scale]
            lines += [
                f"## {name}" if rank == 0 else f"### {name} at {scale} scale",
                "",
                f"**{summary(claims_of[key], checks_of[key], scale)}**"
                f" ({meta.get('scale', '?')} scale,"
                f" {meta.get('wall_s', '?')} s)." + (f" {entry.description}" if rank == 0 else ""),
                "",
                *([f"Data: {entry.data}.", ""] if rank == 0 and entry.data else []),
                f"`{meta.get('command', '')}`, commit {_commits(meta)}",
                "",
                "| claim | paper says | criterion | we measure | verdict |",
                "|---|---|---|---|---|",
            ]
            for c in tables[key]:
                lines.append(f"| {c.name} | {c.paper_says} | {c.criterion} | {c.measured} | {shown(c, scale)} |")
            lines += ["", *(f"![{p.stem}]({folder.name}/{p.name})" for p in sorted(folder.glob("*.png"))), ""]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path
