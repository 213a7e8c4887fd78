"""mnist_cnn.experiments.plan: the blog's set, TOML files of experiments, bad files refused."""

from __future__ import annotations

import json

import pytest

from mnist_cnn.experiments.plan import BLOG, ExperimentsError, experiments


def test_the_blog_set_holds_both_claims_with_their_seeds():
    by_name = {e.name: e for e in experiments("blog")}
    assert by_name["5 epochs"].claim == 0.9885 and len(by_name["5 epochs"].seeds) == 10
    assert by_name["5 epochs"].run_settings(3).seed == 3
    fifty = [e for e in BLOG if e.settings.get("num_epochs") == 50]
    assert {e.settings.get("augment", False) for e in fifty} == {False, True}
    assert all(e.claim == 0.996 and len(e.seeds) == 3 for e in fifty)


def test_the_bundled_set_is_the_settings_each_bundled_models_sidecar_records():
    from mnist_cnn.reading.predictions import bundled_models

    runs = [e.run_settings(seed) for e in experiments("bundled") for seed in e.seeds]
    assert [r.seed for r in runs] == [0, 1, 2, 3, 4]
    for run, path in zip(runs, bundled_models(), strict=True):
        recorded = json.loads(path.with_suffix(".json").read_text())["hyperparameters"]
        assert run.num_epochs == recorded["num_epochs"] == 50 and run.augment
        assert run.vary_shapes and recorded["vary_shapes"]
        assert run.schedule == recorded["schedule"] and run.seed == recorded["seed"]
        assert run.shards == recorded["shards"] == 2


def test_a_toml_file_gives_its_experiments_with_default_and_own_seeds(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('seeds = 2\n\n[[experiment]]\nname = "small batches"\nbatch_size = 20\n'
                    'claim = 98.5\nsource = "me"\n\n[[experiment]]\nname = "wide"\n'
                    'seeds = [0, 7]\nbatch_size = 500\nrecipe = "fast"\n')
    first, second = experiments(path)
    assert first.seeds == (0, 1) and first.claim == 0.985 and first.source == "me"
    assert first.run_settings(1).batch_size == 20 and first.folder == "small-batches"
    assert second.seeds == (0, 7) and second.run_settings(7).recipe == "fast"
    assert [e.seeds for e in experiments(path, seeds=4)] == [(0, 1, 2, 3)] * 2
    assert [e.name for e in experiments(path, only=["wide"])] == ["wide"]


@pytest.mark.parametrize("text, message", [
    ("[[experiment]\n", "not valid TOML"),
    ("title = 1\n[[experiment]]\nname = 'a'\n", "unknown top-level keys"),
    ("seeds = 3\n", "no \\[\\[experiment\\]\\] table"),
    ("[[experiment]]\nname = 'a'\nseed = 3\n", "seed is the sweep's to set"),
    ("[[experiment]]\nname = 'a'\nclaim = 150\n", "`claim` is an accuracy in per cent"),
    ("[[experiment]]\nname = 'a'\nseeds = [1, 1]\n", "a list of different seeds"),
    ("[[experiment]]\nname = 'a'\nnum_epochs = 0\n", "a: "),
    ("[[experiment]]\nname = 'a'\nwidth = 3\n", "unknown settings \\['width'\\]"),
    ("[[experiment]]\nname = 'a b'\n[[experiment]]\nname = 'a-b'\n", "would share a folder"),
])
def test_a_bad_file_is_refused_in_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ExperimentsError, match=message) as caught:
        experiments(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_an_unknown_set_or_experiment_name_is_refused():
    with pytest.raises(ExperimentsError, match="neither a built-in set"):
        experiments("blogg")
    with pytest.raises(ExperimentsError, match="no experiment named 'six epochs'"):
        experiments("blog", only=["six epochs"])
