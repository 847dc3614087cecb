"""The classifier behind the image metric: it learns, it is cached on disk and reused, its
file is written atomically and read without pickle, and it runs on every backend."""
import os

import numpy as np
import pytest

import nnscratch as nn
from conftest import TOLERANCE
from nnscratch import datasets
from nnscratch.metrics import classifier as clf_module
from nnscratch.metrics.classifier import (
    Classifier,
    cache_path,
    cache_root,
    clear_memory,
    get_classifier,
)

MINI = "fashion-mnist-mini"
EPOCHS = 3          # about 80 % on the mini test split, a couple of seconds on 2 cores


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("cache")
        mp.setenv("NNSCRATCH_CACHE", str(root))
        clear_memory()
        yield root
        clear_memory()


@pytest.fixture(scope="module")
def trained(cache):
    return get_classifier(MINI, epochs=EPOCHS, progress=False)


@pytest.fixture(scope="module")
def test_split():
    return datasets.load(MINI, "test")


def test_classifier_learns_the_mini_set(trained, test_split):
    acc = trained.accuracy(test_split.x, test_split.labels)
    assert acc > 0.75
    assert trained.info["test_accuracy"] == pytest.approx(acc)
    assert trained.info["dataset"] == MINI and trained.info["epochs"] == EPOCHS


def mini_digest():
    return clf_module.data_digest(datasets.load(MINI, "train"))


def test_weights_are_cached_under_the_cache_dir(trained, cache):
    digest = mini_digest()
    path = cache_path(MINI, epochs=EPOCHS, digest=digest)
    assert path == cache / "classifiers" / (f"{MINI}_784-256-128-10-relu_e{EPOCHS}_seed0_"
                                            f"{digest[:16]}.npz")
    assert trained.info["digest"] == digest
    assert path.is_file()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_second_call_reuses_memory_then_the_file(trained, test_split, monkeypatch):
    calls = []
    monkeypatch.setattr(clf_module, "train_classifier", lambda *a, **k: calls.append(1))
    assert get_classifier(MINI, epochs=EPOCHS, progress=False) is trained
    clear_memory()
    again = get_classifier(MINI, epochs=EPOCHS, progress=False)
    assert calls == [] and again is not trained
    np.testing.assert_array_equal(again.features(test_split.x[:50]),
                                  trained.features(test_split.x[:50]))
    assert again.info["test_accuracy"] == trained.info["test_accuracy"]


def test_a_corrupt_cache_file_is_replaced(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path))
    path = cache_path(MINI, hidden=(8,), epochs=1, digest=mini_digest())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip file")
    model = get_classifier(MINI, hidden=(8,), epochs=1, progress=False)
    assert "ignoring the cached classifier" in capsys.readouterr().err
    assert Classifier.load(path).hidden == (8,)
    assert model.n_features == 8


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "a"))
    assert cache_root() == tmp_path / "a"
    monkeypatch.delenv("NNSCRATCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "nnscratch"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "nnscratch"
    assert cache_path("mnist", (64, 32), 2, 7).name == "mnist_784-64-32-10-relu_e2_seed7.npz"


def test_save_load_round_trip_without_pickle(trained, test_split, tmp_path):
    path = trained.save(tmp_path / "sub" / "c.npz")
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    loaded = Classifier.load(path)
    np.testing.assert_array_equal(loaded.predict(test_split.x), trained.predict(test_split.x))
    assert os.listdir(tmp_path / "sub") == ["c.npz"]


def test_runs_on_every_backend(trained, test_split, backend_name, tmp_path):
    path = trained.save(tmp_path / "c.npz")
    model = Classifier.load(path, backend=nn.Backend(backend_name, "float32"))
    x = test_split.x[:300]
    np.testing.assert_allclose(model.features(x), trained.features(x), rtol=1e-5, atol=1e-5)
    assert (model.predict(x) == trained.predict(x)).mean() > 0.99


def test_features_predictions_and_shapes(trained, test_split):
    x = test_split.x[:1000]
    h, y_hat = trained.features_and_classes(x)
    assert h.shape == (1000, 128) and h.dtype == np.float32 and (h >= 0).all()
    np.testing.assert_array_equal(h, trained.features(x))
    np.testing.assert_array_equal(y_hat, trained.predict(x))
    # Batches of other sizes round differently in BLAS, nothing more.
    np.testing.assert_allclose(trained.features(x, batch_size=300), h, rtol=1e-5, atol=1e-5)
    assert y_hat.dtype == np.int64 and trained.logits(x[:7]).shape == (7, 10)
    with pytest.raises(nn.ShapeError):
        trained.features(x[:, :100])


def test_training_leaves_the_default_generator_alone(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path))
    default = nn.use_backend("numpy", seed=123)
    before = default.rng_state()
    get_classifier(MINI, hidden=(8,), epochs=1, progress=False)
    assert default.rng_state() == before


def test_training_is_reproducible_and_reports_accuracy(capsys):
    a = clf_module.train_classifier(MINI, hidden=(16,), epochs=1, seed=3)
    b = clf_module.train_classifier(MINI, hidden=(16,), epochs=1, seed=3, progress=False)
    for k, p in a.state_dict().items():
        np.testing.assert_array_equal(p, b.state_dict()[k])
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "test accuracy" in err


def test_classifier_gradients(b64):
    model = Classifier((5, 4), n_in=6, n_classes=3, backend=b64)
    # He's initialisation leaves b = 0, so an example whose 5 first-layer units are all off
    # gives the next layer a pre-activation of exactly 0, on the ReLU's kink, where a central
    # difference is wrong by half the slope (seen on CuPy's draws). Biases of 0.1 move it off.
    for name, p in model.params.items():
        if name.endswith(".b"):
            p[...] = 0.1
    x = b64.normal((7, 6))
    labels = b64.asarray(np.array([0, 1, 2, 2, 1, 0, 1]), dtype=b64.xp.int64)
    report = nn.gradcheck(model, x, loss=lambda s: nn.softmax_cross_entropy(s, labels))
    assert max(report.values()) < TOLERANCE, nn.format_report(report)
    assert set(report) >= {"body.0.W", "body.2.b", "head.W"}
