"""The committed gallery agrees with the code: claims re-derived from each folder's measurements equal its verdicts."""

import json
from pathlib import Path

import pandas as pd
import pytest

from initbench.benchmarks.reproduce import (
    REPRODUCTIONS,
    Claim,
    Reproduction,
    read_verdicts,
    rederive,
    write,
    write_gallery,
)
from initbench.inits.errors import UsageError

GALLERY = Path(__file__).resolve().parents[2] / "results" / "reference"


COMMITTED = sorted(p.name for p in GALLERY.iterdir() if p.is_dir())


def test_every_reproduction_has_a_committed_cpu_folder_and_full_where_it_has_that_scale():
    from initbench.benchmarks.reproduce import folder_name

    expected = [folder_name(e.name, s) for e in REPRODUCTIONS.values() for s in ("cpu", "full") if s in e.scales]
    assert COMMITTED == sorted(expected)
    for name in COMMITTED:  # each folder holds the scale its name says
        meta = json.loads((GALLERY / name / "provenance.json").read_text())
        assert folder_name(meta["reproduction"], meta["scale"]) == name and meta["scale"] in ("cpu", "full")


@pytest.mark.parametrize("name", COMMITTED)
def test_the_claims_rederived_from_the_committed_measurements_are_the_committed_verdicts(name):
    # every field: name, paper_says, criterion, measured, passed, kind (claim or check), note
    assert rederive(GALLERY / name) == read_verdicts(GALLERY / name)


def test_the_committed_gallery_page_is_the_one_its_folders_write(tmp_path):
    # write_gallery over a copy of the folders gives the committed README, byte for byte
    import shutil

    copy = tmp_path / "reference"
    shutil.copytree(GALLERY, copy)
    assert write_gallery(copy).read_text() == (GALLERY / "README.md").read_text().replace(
        "results/reference", str(copy)
    )


def test_rederive_names_a_folder_that_is_not_a_reproduction(tmp_path):
    with pytest.raises(UsageError, match=r"has no provenance\.json"):
        rederive(tmp_path)


def test_a_folder_whose_measurements_changed_rederives_to_other_verdicts(tmp_path):
    # the test above can fail: he2015's "22 layers" claim flips when He's curve never leaves ln 10
    folder = tmp_path / "he2015"
    folder.mkdir()
    rows = pd.read_parquet(GALLERY / "he2015" / "measurements.parquet")
    (folder / "provenance.json").write_text(json.dumps({"reproduction": "he2015", "scale": "cpu"}))
    he = (rows["part"] == "convergence") & (rows["init"] == "he_normal")
    rows.loc[he, "value"] = 3.0
    rows.to_parquet(folder / "measurements.parquet", index=False)
    claims = {c.name: c.passed for c in rederive(folder)}
    assert not claims["22 layers: both converge, He first"] and not claims["30 layers: Xavier stalls"]


def test_the_gallery_page_indexes_every_claim_with_its_criterion(tmp_path):
    claims = [
        Claim("c1", "says", "within 0.1", "0.05", True),
        Claim("c2", "says too", "below 1", "3 units", False),
        Claim("c3", "says", "above 0", "1", True, note="a tenth of the paper's size"),
        Claim("k1", "symmetric", "exact", "0", True, kind="check", note="cannot fail: exact by construction"),
    ]
    write(Reproduction("zhu2021", "cpu", claims, pd.DataFrame({"x": [1.0]}), {}), tmp_path)
    assert read_verdicts(tmp_path / "zhu2021") == claims  # the csv round trip keeps kind and note
    page = write_gallery(tmp_path).read_text()
    index, body = page.split("## zhu2021", 1)
    assert "2/3 claims hold (1 weak), 1/1 checks pass** over 1 reproductions" in index
    assert "| [zhu2021](#zhu2021) | cpu | 2/3 (1 weak) | c2 | 1/1 |" in index
    assert "| c3 | says | above 0 | 1 | weak pass: a tenth of the paper's size |" in body
    assert "| k1 | symmetric | exact | 0 | check passes: cannot fail: exact by construction |" in body
    assert "| c1 | says | within 0.1 | 0.05 | pass |" in body
    assert "| c2 | says too | below 1 | 3 units | **FAIL** |" in body
    # at smoke scale (a wiring check) the claims are shown as not judged and counted nowhere; checks are judged
    write(Reproduction("zhu2021", "smoke", claims, pd.DataFrame({"x": [1.0]}), {}), tmp_path)
    index, body = write_gallery(tmp_path).read_text().split("## zhu2021", 1)
    assert "**0/0 claims hold, 1/1 checks pass** over 1 reproductions" in index
    assert "| [zhu2021](#zhu2021) | smoke | not judged (smoke) | - | 1/1 |" in index
    assert "| c2 | says too | below 1 | 3 units | not judged (smoke) |" in body and "FAIL" not in body
    assert "**3 claims not judged (smoke), 1/1 checks pass**" in body


def test_the_gallery_shows_the_most_faithful_scale_first_with_both_wall_times(tmp_path):
    from initbench.benchmarks.reproduce import folders

    cpu = [Claim("c1", "says", "above 0", "-1", False), Claim("c2", "says", "below 1", "0.5", True)]
    full = [Claim("c1", "says", "above 0", "2", True), Claim("c2", "says", "below 1", "0.4", True)]
    write(Reproduction("he2015", "cpu", cpu, pd.DataFrame({"x": [1.0]}), {}, 12.5), tmp_path)
    write(Reproduction("he2015", "full", full, pd.DataFrame({"x": [1.0]}), {}, 600.0), tmp_path)
    assert list(folders(tmp_path, "he2015")) == ["full", "cpu"]
    assert folders(tmp_path, "he2015")["full"] == tmp_path / "he2015-full"
    page = write_gallery(tmp_path).read_text()
    index, body = page.split("## he2015", 1)
    assert "**2/2 claims hold** over 1 reproductions, each at its most faithful written scale" in index
    assert "| [he2015](#he2015) | full | 2/2 | - | - | 12.5 | 600.0 |" in index
    main, rest = body.split("### he2015 at cpu scale", 1)
    assert "**2/2 claims hold** (full scale, 600.0 s)" in main and "| c1 | says | above 0 | 2 | pass |" in main
    assert "**1/2 claims hold** (cpu scale, 12.5 s)" in rest and "| c1 | says | above 0 | -1 | **FAIL** |" in rest
    # the paper's data and what stands in for it, once, with the most faithful scale
    assert f"Data: {REPRODUCTIONS['he2015'].data}." in main and "Data:" not in rest


def test_every_reproduction_says_what_data_stands_in_for_the_papers():
    assert all(e.data for e in REPRODUCTIONS.values())


def test_a_scale_a_reproduction_lacks_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    from initbench.benchmarks import cli
    from initbench.benchmarks import reproduce as package

    monkeypatch.setattr(package, "reproduce", lambda *a: pytest.fail("measured before checking the scale"))
    lacking = next(e.name for e in REPRODUCTIONS.values() if "full" not in e.scales)
    assert cli.main(["reproduce", lacking, "--scale", "full", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        f"reproduction {lacking} has no 'full' scale (its paper's setup does not fit a 2-core CPU);"
        " its scales: smoke, cpu, paper"
    ), err
    assert len(err.splitlines()) == 1 and not (tmp_path / "o").exists()
    with pytest.raises(UsageError, match="has no 'full' scale"):
        package.datasets(lacking, "full")


def test_rejudge_rewrites_the_verdicts_from_the_measurements_and_records_the_judging_commit(tmp_path, capsys):
    import shutil

    from initbench.benchmarks import cli

    shutil.copytree(GALLERY / "he2015", tmp_path / "he2015")
    (tmp_path / "he2015" / "verdicts.csv").write_text("name,paper_says,criterion,measured,passed\nx,y,z,w,True\n")
    assert cli.main(["reproduce", "he2015", "--rejudge", "--out", str(tmp_path)]) == 0
    assert "he2015: 5/5 claims hold (re-judged from" in capsys.readouterr().out
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "he2015" / "verdicts.csv"), pd.read_csv(GALLERY / "he2015" / "verdicts.csv")
    )
    meta = json.loads((tmp_path / "he2015" / "provenance.json").read_text())
    committed = json.loads((GALLERY / "he2015" / "provenance.json").read_text())
    assert meta["git_commit"] == committed["git_commit"] and "judged_utc" in meta and "judged_commit" in meta
    # bad uses: a folder never written, and a scale (the folder's own is used)
    assert cli.main(["reproduce", "saxe2014", "--rejudge", "--out", str(tmp_path)]) == 2
    assert "has no provenance.json" in capsys.readouterr().err
    assert cli.main(["reproduce", "he2015", "--rejudge", "--scale", "cpu", "--out", str(tmp_path)]) == 2
    assert "drop --scale" in capsys.readouterr().err


def test_rederive_refuses_a_folder_holding_another_reproduction_or_unreadable_files(tmp_path):
    import shutil

    shutil.copytree(GALLERY / "he2015", tmp_path / "init-histograms")
    with pytest.raises(
        UsageError, match=r"holds reproduction he2015 at cpu scale .* whose folder is 'he2015', not 'init-histograms'"
    ):
        rederive(tmp_path / "init-histograms")
    folder = tmp_path / "he2015"
    shutil.copytree(GALLERY / "he2015", folder)
    (folder / "measurements.parquet").write_bytes(b"not parquet")
    with pytest.raises(UsageError, match="is not a readable parquet file"):
        rederive(folder)
    shutil.copy(GALLERY / "init-histograms" / "measurements.parquet", folder / "measurements.parquet")
    with pytest.raises(UsageError, match="does not hold he2015's measurements"):
        rederive(folder)
    (folder / "provenance.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="holds a list, not a reproduction's provenance"):
        rederive(folder)
    (folder / "provenance.json").write_text("{")
    with pytest.raises(UsageError, match="is not readable JSON"):
        rederive(folder)


def test_rejudge_takes_every_written_scale_of_a_reproduction(tmp_path, capsys):
    import shutil

    from initbench.benchmarks import cli

    for name in ("he2015", "he2015-full"):
        shutil.copytree(GALLERY / name, tmp_path / name)
        (tmp_path / name / "verdicts.csv").write_text("name,paper_says,criterion,measured,passed\nx,y,z,w,True\n")
    assert cli.main(["reproduce", "he2015", "--rejudge", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "he2015-full: 5/5 claims hold (re-judged" in out and "he2015: 5/5 claims hold (re-judged" in out
    for name in ("he2015", "he2015-full"):
        assert read_verdicts(tmp_path / name) == read_verdicts(GALLERY / name)
    shutil.move(tmp_path / "he2015-full", tmp_path / "zhu2021")  # a folder named for another reproduction
    with pytest.raises(UsageError, match=r"at full scale .* whose folder is 'he2015-full', not 'zhu2021'"):
        rederive(tmp_path / "zhu2021")
    shutil.copytree(GALLERY / "he2015", tmp_path / "he2015-full", dirs_exist_ok=True)  # a cpu run under -full
    with pytest.raises(UsageError, match=r"at cpu scale .* whose folder is 'he2015', not 'he2015-full'"):
        rederive(tmp_path / "he2015-full")


def test_an_unreadable_provenance_is_one_line_for_rejudge_and_no_traceback_for_the_page(tmp_path, capsys):
    import shutil

    from initbench.benchmarks import cli

    for name in ("he2015", "he2015-full"):
        shutil.copytree(GALLERY / name, tmp_path / name)
    (tmp_path / "he2015-full" / "provenance.json").write_text("{")
    before = (tmp_path / "he2015" / "verdicts.csv").read_text()
    assert cli.main(["reproduce", "he2015", "--rejudge", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "he2015-full/provenance.json' is not readable JSON" in err and len(err.splitlines()) == 1
    assert (tmp_path / "he2015" / "verdicts.csv").read_text() == before  # nothing rewritten
    page = write_gallery(tmp_path).read_text()  # the page is written from what is readable
    assert "| [he2015](#he2015) | cpu | 5/5 |" in page
