"""mnist_cnn.training.settings: one record of a run, from its recipe to its checkpoint."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mnist_cnn import defaults
from mnist_cnn.errors import EngineError, TrainingError
from mnist_cnn.training.settings import Settings


def test_a_recipe_gives_its_values_and_given_settings_replace_them():
    fast = Settings.of("fast", seed=3)
    assert (fast.num_epochs, fast.batch_size, fast.learning_rate, fast.seed) == (2, 192, 4e-3, 3)
    assert (fast.rule, fast.dropout, fast.tutorial) == ("adam", False, False)
    assert Settings.of() == Settings() and Settings().tutorial
    assert Settings.of(batch_size=100).shards == defaults.shards_for(100)
    assert Settings.of(batch_size=100, shards=1).shards == 1


def test_the_record_round_trips_through_json_whole():
    settings = Settings.of("fast", model="mlp", augment=True, threads=2, device="cpu")
    record = json.loads(json.dumps(settings.to_dict()))
    assert set(record) == set(Settings.names()) and Settings.from_record(record) == settings


def test_a_record_of_an_earlier_version_gets_the_values_it_was_made_with():
    record = Settings().to_dict()
    del record["shards"], record["threads"], record["vary_shapes"]
    old = Settings.from_record(record)
    assert old.shards == 1 and old.threads == defaults.THREADS and not old.vary_shapes


def test_varying_shapes_without_the_augmentation_is_refused():
    with pytest.raises(TrainingError, match="give --augment with --vary-shapes"):
        Settings.of(vary_shapes=True).check()
    Settings.of(augment=True, vary_shapes=True).check()


def test_every_setting_but_epochs_device_and_threads_must_match_to_resume():
    assert set(Settings.fixed()) == set(Settings.names()) - {"num_epochs", "device", "threads"}
    there = Settings()
    here = there.replace(num_epochs=9, threads=1, device="cpu", seed=5, shards=1)
    assert there.differences(here) == ["seed=0 there, 5 here", "shards=2 there, 1 here"]


def test_adding_a_field_is_all_it_takes_to_record_a_setting():
    extended = dataclasses.make_dataclass(
        "Extended", [("label_smoothing", float, 0.0)], bases=(Settings,), frozen=True)
    assert "label_smoothing" in extended.names() and "label_smoothing" in extended.fixed()
    assert extended.from_record(extended(label_smoothing=0.1).to_dict()).label_smoothing == 0.1


@pytest.mark.parametrize(("given", "message"), [
    ({"num_epochs": 0}, "number of epochs"),
    ({"batch_size": True}, "batch size"),
    ({"learning_rate": float("nan")}, "learning rate"),
    ({"momentum": 1.0}, "momentum"),
    ({"seed": -1}, "seed"),
    ({"schedule": "linear"}, "schedule"),
    ({"shards": 51}, "shards"),
    ({"floatx": "float16"}, "floatX"),
    ({"floatx": "float64"}, "float64 runs on"),
    ({"threads": 0}, "threads"),
    ({"model": "resnet"}, "unknown model"),
])
def test_a_bad_setting_is_named_before_anything_runs(given, message):
    with pytest.raises(TrainingError, match=message):
        Settings.of(**given).validate()


def test_unknown_recipes_settings_and_engines_are_refused():
    with pytest.raises(TrainingError, match="unknown recipe"):
        Settings.of("slow")
    with pytest.raises(TrainingError, match="unknown settings"):
        Settings.of(epochs=3)
    with pytest.raises(EngineError, match="unknown engine"):
        Settings.of(engine="caffe").validate()
    with pytest.raises(EngineError, match="tutorial's recipe"):
        Settings.of("fast", engine="numpy").validate()
