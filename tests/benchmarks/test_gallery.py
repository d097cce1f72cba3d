"""The committed gallery agrees with the code: claims re-derived from each folder's measurements equal its verdicts."""

from pathlib import Path

import pandas as pd
import pytest

from initbench.benchmarks.reproduce import depth_mup, yang2022_transfer

GALLERY = Path(__file__).resolve().parents[2] / "results" / "reference"

# reproductions whose claims are a pure function of their measurements.parquet
REDERIVE = {
    "yang2022-transfer": lambda m: yang2022_transfer.transfer_claims(m, "cpu"),
    "wider-is-better": lambda m: yang2022_transfer.wider_claims(m, "cpu"),
    "depth-mup": depth_mup.claims,
}


@pytest.mark.parametrize("name", list(REDERIVE))
def test_the_claims_rederived_from_the_committed_measurements_are_the_committed_verdicts(name):
    folder = GALLERY / name
    verdicts = pd.read_csv(folder / "verdicts.csv")
    claims = REDERIVE[name](pd.read_parquet(folder / "measurements.parquet"))
    assert len(claims) == len(verdicts)
    for claim, (_, row) in zip(claims, verdicts.iterrows(), strict=True):
        assert (claim.name, claim.paper_says, claim.criterion, claim.measured, claim.passed) == (
            row["name"],
            row["paper_says"],
            row["criterion"],
            row["measured"],
            bool(row["passed"]),
        )
