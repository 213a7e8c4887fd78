"""mnist_cnn.experiments.report: the statistics of a sweep, its Markdown, JSON and figure."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from PIL import Image

from mnist_cnn.experiments.plan import Experiment
from mnist_cnn.experiments.report import RunOutcome, build_report, summarize, write_report


def test_the_interval_is_students_t_on_the_sample_standard_deviation():
    values = [0.9890, 0.9902, 0.9894, 0.9918, 0.9903]
    s = summarize(values)
    sd = statistics.stdev(values)
    half = 2.7764451051977987 * sd / math.sqrt(5)  # t(0.975, 4), from printed tables
    assert s.n == 5 and s.mean == pytest.approx(statistics.fmean(values))
    assert s.std == pytest.approx(sd) and s.low == pytest.approx(s.mean - half)
    assert s.high == pytest.approx(s.mean + half) and (s.min, s.max) == (0.9890, 0.9918)
    one = summarize([0.99])
    assert one.std is None and one.low is None and one.mean == 0.99


def outcomes(name: str, accuracies: list[float]) -> list[RunOutcome]:
    return [RunOutcome(name, seed, f"sweep/{name}/seed-{seed}", a, 60.0 + seed, "trained")
            for seed, a in enumerate(accuracies)]


def test_the_report_says_whether_each_claim_lies_in_its_interval(tmp_path):
    plan = [Experiment("held", {"num_epochs": 5}, (0, 1, 2), 0.9885, "the blog"),
            Experiment("missed", {"num_epochs": 50}, (0, 1, 2), 0.996, "the blog"),
            Experiment("no claim", {}, (0,))]
    runs = (outcomes("held", [0.9880, 0.9890, 0.9886]) +
            outcomes("missed", [0.9944, 0.9950, 0.9947]) + outcomes("no claim", [0.98]))
    report = build_report(runs, plan, str(tmp_path), 2, 123.0)
    held, missed, none = report.experiments
    assert held.claim_in_interval is True and missed.claim_in_interval is False
    assert none.claim_in_interval is None
    text = report.to_markdown()
    assert "| held | 3 | 98.85 ± 0.05 |" in text and "| **no** |" in text
    paths = write_report(report, tmp_path)
    record = json.loads(paths["json"].read_text())
    assert [e["claim_in_interval"] for e in record["experiments"]] == [True, False, None]
    assert len(record["runs"]) == 7 and paths["markdown"].read_text() == text
    assert Image.open(paths["figure"]).size[0] == 1000


def test_the_figures_are_the_same_whichever_run_ended_first(tmp_path):
    # Three values whose float sum depends on its order: the mean's last digit did.
    plan = [Experiment("three", {}, (0, 1, 2))]
    runs = outcomes("three", [0.1, 0.2, 0.3])
    assert sum([0.1, 0.2, 0.3]) != sum([0.3, 0.2, 0.1])
    ended = [build_report(order, plan, str(tmp_path), 2, 1.0)
             for order in (runs, runs[::-1], runs[1:] + runs[:1])]
    assert all(r.experiments == ended[0].experiments and r.runs == ended[0].runs
               for r in ended)
