"""Fitting cost constants to measured time, and measuring a CVAT export (no server needed)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import autolabel as al
from autolabel.cli import main as cli
from autolabel.config import CostProfile
from autolabel.savings.costfit import FIT_PARAMS, fit_costs
from autolabel.savings.measure import measure_cvat
from autolabel.formats import read_coco, read_cvat, write_coco, write_cvat
from autolabel.matching import EDIT_KINDS
from autolabel.savings.edits import count_edits, edit_seconds, scratch_seconds

TRUE = {"image_overhead_s": 3.0, "verify_s": 1.2, "adjust_s": 4.0, "relabel_s": 2.5, "delete_s": 1.5, "draw_s": 6.0}


def annotator_seconds(c, true=TRUE):
    """The simulated annotator (also used by test_labelstudio): overhead + seconds per
    action, adjust_relabel = adjust + relabel. ``c``: a dict of counts or a DataFrame."""
    return (
        true["image_overhead_s"]
        + true["verify_s"] * c["accept"]
        + true["adjust_s"] * (c["adjust"] + c["adjust_relabel"])
        + true["relabel_s"] * (c["relabel"] + c["adjust_relabel"])
        + true["delete_s"] * c["delete"]
        + true["draw_s"] * c["draw"]
    )


def _seconds(c: pd.DataFrame, true=TRUE) -> np.ndarray:
    return np.asarray(annotator_seconds(c, true), np.float64)


@pytest.fixture(scope="module")
def data(coco150, yolov5n):
    """Real edit counts: yolov5n pre-labels against coco-val-150 (crowd regions dropped)."""
    pre = al.prelabel(coco150 / "instances.json", yolov5n, progress=False)
    gt = read_coco(coco150 / "instances.json")
    gt = replace(gt, detections=[d[~d.iscrowd] for d in gt])
    edits = count_edits(pre, gt)
    rows = pd.DataFrame(edits.per_image_counts, columns=list(EDIT_KINDS))
    rows.insert(0, "image", edits.images)
    return pre, gt, rows


def test_noise_free_times_give_back_the_constants_exactly(data):
    rows = data[2].assign(seconds=lambda d: _seconds(d))
    fit = fit_costs(rows, n_boot=100)
    assert fit.n_rows == 150 and fit.r2 == pytest.approx(1.0, abs=1e-12) and fit.rmse_s < 1e-9
    assert list(fit.table.index) == list(FIT_PARAMS) and (fit.table["status"] == "fitted").all()
    for name, value in TRUE.items():
        assert fit.table.at[name, "estimate"] == pytest.approx(value, abs=1e-9)
        assert getattr(fit.profile, name) == pytest.approx(value, abs=1e-9)
    assert fit.table.at["relabel_s", "rows"] == int(((rows["relabel"] + rows["adjust_relabel"]) > 0).sum())
    assert fit.total_seconds == pytest.approx(rows["seconds"].sum())


def _lognormal(rng, mean, cv, n):
    """``n`` lognormal draws with the given mean and coefficient of variation."""
    s2 = np.log1p(cv**2)
    return rng.lognormal(np.log(mean) - s2 / 2, np.sqrt(s2), n)


# Mean seconds of one action of each kind in the simulated team; a wrong-class box with a
# bad fit is one action of its own (mean 6.5 s), not an adjust plus a relabel.
ACTION_MEAN = {"accept": 1.2, "adjust": 4.0, "relabel": 2.5, "adjust_relabel": 6.5, "delete": 1.5, "draw": 6.0}


def _team_seconds(counts: pd.DataFrame, rng, annotators: int = 10) -> pd.DataFrame:
    """Not the fit's model: every image is labeled by ``annotators`` people; each
    action's time is its own lognormal draw (CV 0.4), plus a lognormal per-image
    overhead (mean 3 s, CV 0.3). Noise grows with the number of actions and is skewed."""
    rows = pd.concat([counts] * annotators, ignore_index=True)
    secs = _lognormal(rng, TRUE["image_overhead_s"], 0.3, len(rows))
    for kind, mean in ACTION_MEAN.items():
        n = rows[kind].to_numpy()
        per_action = _lognormal(rng, mean, 0.4, int(n.sum()))
        secs += np.bincount(np.repeat(np.arange(len(rows)), n), weights=per_action, minlength=len(rows))
    return rows.assign(seconds=secs)


# Allowed |estimate - true| in seconds, for 1,500 rows (150 real images x 10 annotators).
# relabel_s and adjust_s are the loosest: only 19 relabels and 10 adjust-relabels occur in
# the real edits. Over the 20 seeds below the worst errors were 0.48, 0.13, 0.42, 0.49,
# 0.15 and 0.09 s; the tolerances leave about 1.5x that.
TOLERANCE_S = {"image_overhead_s": 0.75, "verify_s": 0.25, "adjust_s": 0.65, "relabel_s": 0.75, "delete_s": 0.25,
               "draw_s": 0.15}


def test_constants_are_recovered_from_times_of_a_different_noisy_process(data):
    counts = data[2][list(EDIT_KINDS)]
    truth = pd.Series(TRUE)
    errors, covered = [], []
    for seed in range(20):
        fit = fit_costs(_team_seconds(counts, np.random.default_rng(seed)), n_boot=100, seed=seed)
        t = fit.table
        errors.append((t["estimate"] - truth).abs())
        covered.append(((t["ci_low"] <= truth) & (truth <= t["ci_high"])).to_numpy())
        assert 0.8 < fit.r2 < 1.0
    errors = pd.DataFrame(errors)
    assert (errors.max() <= pd.Series(TOLERANCE_S)).all(), errors.max().round(3).to_dict()
    assert errors.mean().mean() < 0.2  # on average a tenth of a second per constant
    assert np.mean(covered) >= 0.85, dict(zip(TRUE, np.mean(covered, axis=0)))


def test_pinned_constants_and_constants_no_row_exercises(data):
    rows = data[2].copy()
    rows = rows[(rows["relabel"] == 0) & (rows["adjust_relabel"] == 0)]
    rows["seconds"] = _seconds(rows)
    fit = fit_costs(rows, fixed={"draw_s": 6.0}, n_boot=50)
    t = fit.table
    assert t.at["relabel_s", "status"] == "not observed" and t.at["relabel_s", "rows"] == 0
    assert fit.profile.relabel_s == CostProfile.load("extreme-clicking").relabel_s and math.isnan(
        t.at["relabel_s", "ci_low"]
    )
    assert t.at["draw_s", "status"] == "fixed" and fit.profile.draw_s == 6.0
    for name in ("image_overhead_s", "verify_s", "adjust_s", "delete_s"):
        assert t.at[name, "status"] == "fitted" and t.at[name, "estimate"] == pytest.approx(TRUE[name], abs=1e-9)


def test_bad_inputs_are_clear_errors(data):
    rows = data[2].assign(seconds=lambda d: _seconds(d))
    with pytest.raises(ValueError, match=r"needs columns \['seconds'\]"):
        fit_costs(rows.drop(columns="seconds"))
    with pytest.raises(ValueError, match="no row has a measured time"):
        fit_costs(rows.assign(seconds=np.nan))
    with pytest.raises(ValueError, match="must not be negative"):
        fit_costs(rows.assign(draw=-1))
    with pytest.raises(ValueError, match=r"cannot fix \['speed'\]"):
        fit_costs(rows, fixed={"speed": 1.0})
    # verify dearer than relabel breaks the profile's rule: the error says how to pin it
    odd = _seconds(rows, {**TRUE, "verify_s": 3.0, "relabel_s": 0.5})
    with pytest.raises(ValueError, match=r"verify_s=3\.000.*relabel_s=0\.500.*fixed="):
        fit_costs(rows.assign(seconds=odd), n_boot=0)


def test_the_profile_yaml_reads_back_and_prices_the_measured_time(data, tmp_path):
    rows = data[2].assign(seconds=lambda d: _seconds(d))
    fit = fit_costs(rows, base="annotation-factory", n_boot=50)
    text = open(fit.to_yaml(tmp_path / "team.yaml")).read()
    assert text.startswith("# Fitted by autolabel from 150 measured rows: R^2 = 1.000")
    prof = CostProfile.load(tmp_path / "team.yaml")
    base = CostProfile.load("annotation-factory")
    assert (prof.currency, prof.hourly_wage, prof.review_passes) == (
        base.currency,
        base.hourly_wage,
        base.review_passes,
    )
    for name, value in TRUE.items():
        assert getattr(prof, name) == pytest.approx(value, abs=1e-4)
    no_review = prof.model_copy(update={"review_passes": 0})
    counts = rows[list(EDIT_KINDS)].to_numpy(np.float64)
    assert edit_seconds(counts, no_review) == pytest.approx(rows["seconds"].to_numpy(), abs=1e-2)


def test_a_cvat_export_is_measured_against_the_prelabels(data, tmp_path):
    pre, gt, _ = data
    xml = write_cvat(gt, tmp_path / "annotations.xml")[0]
    pre_file = write_coco(pre, tmp_path / "prelabels.json")[0]
    # the savings module on the same files
    edits = count_edits(read_coco(pre_file), read_cvat(xml))
    expected = pd.DataFrame(edits.per_image_counts, columns=list(EDIT_KINDS), index=list(edits.images))

    m = measure_cvat(xml, pre_file, n_boot=0)  # CVAT records no time: edits and modeled seconds only
    assert m.fit is None and m.rows["seconds"].isna().all() and m.rows["prelabeled"].all()
    got = m.rows.set_index("image")[list(EDIT_KINDS)]
    pd.testing.assert_frame_equal(got.loc[expected.index], expected, check_dtype=False, check_names=False)
    counts = got.to_numpy(np.float64)
    assert m.rows["assisted_s"].to_numpy() == pytest.approx(edit_seconds(counts, "extreme-clicking"))
    assert m.rows["scratch_s"].to_numpy() == pytest.approx(
        scratch_seconds(m.rows["gt_boxes"].to_numpy(), "extreme-clicking")
    )
    assert m.rows["gt_boxes"].sum() == sum(len(d) for d in gt)

    times = pd.DataFrame({"image": expected.index, "seconds": _seconds(expected)})
    times.to_csv(tmp_path / "times.csv", index=False)
    timed = measure_cvat(xml, pre_file, tmp_path / "times.csv", n_boot=50)
    for name, value in TRUE.items():
        assert timed.fit.table.at[name, "estimate"] == pytest.approx(value, abs=1e-6)
    assert timed.profile.draw_s == pytest.approx(6.0)
    out = tmp_path / "measured"
    written = timed.save(out)
    assert {p.rsplit("/", 1)[-1] for p in written} == {
        "annotations.json",
        "edits.csv",
        "summary.json",
        "cost_profile.yaml",
    }
    assert len(read_coco(out / "annotations.json")) == 150

    code = cli(
        [
            "pull",
            "--cvat",
            xml,
            "--predictions",
            pre_file,
            "--times",
            str(tmp_path / "times.csv"),
            "--out",
            str(tmp_path / "cli"),
        ]
    )
    assert code == 0 and CostProfile.load(tmp_path / "cli" / "cost_profile.yaml").verify_s == pytest.approx(
        1.2, abs=1e-4
    )


def test_bad_times_files_name_the_problem(data, tmp_path):
    pre, gt, _ = data
    xml = write_cvat(gt, tmp_path / "a.xml")[0]
    keys = [d.image.key for d in gt]
    bad = tmp_path / "t.csv"
    pd.DataFrame({"file": keys, "seconds": 1.0}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"t\.csv: a times CSV needs columns 'image' and 'seconds'"):
        measure_cvat(xml, pre, bad)
    pd.DataFrame({"image": keys[:3], "seconds": [1.0, "slow", 2.0]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"t\.csv: row 3: seconds must be a non-negative number, got 'slow'"):
        measure_cvat(xml, pre, bad)
    pd.DataFrame({"image": ["nope.jpg"], "seconds": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"times name 1 images not in .*a\.xml: \['nope\.jpg'\]"):
        measure_cvat(xml, pre, bad)
    assert cli(["pull", "--cvat", xml, "--out", str(tmp_path / "x")]) == 2
