"""The workbook (issue 20): the stubs, the grader and training with the student's code.

The grader cannot rot: it is run on the untouched stubs (every exercise "not started"), on
the library's implementations with the stubs' signatures and on a hand-written solution in
a student's style (all "right"), and on realistic wrong answers, each one line planted in
that solution (each "wrong", naming the equation to re-read)."""
import json
import time

import numpy as np
import pytest

from cli_helpers import one_error_line
from nnscratch.cli import main
from nnscratch.dense import Dense
from nnscratch.workbook import exercises, grader, plug
from nnscratch.workbook.exercises import EXERCISES, TOPICS

#: A student's answers, written with NumPy as the stubs ask (not the library's code).
SOLUTION = {
    "01_dense.py": '''import numpy as np


def dense_forward(x, W, b):
    return x @ W + b


def dense_backward(dy, x, W):
    dW = x.T @ dy
    db = dy.sum(axis=0)
    dx = dy @ W.T
    return dx, dW, db
''',
    "02_activations.py": '''import numpy as np


def leaky_relu_backward(dy, y, alpha):
    return np.where(y > 0, dy, alpha * dy)


def sigmoid_backward(dy, y):
    return dy * y * (1 - y)


def sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))
''',
    "03_stabilisers.py": '''import numpy as np


def dropout_forward(x, mask, p):
    return mask * x / (1 - p)


def dropout_backward(dy, mask, p):
    return mask * dy / (1 - p)


def batchnorm_backward(dy, x_hat, inv_std, gamma):
    B = dy.shape[0]
    dbeta = dy.sum(axis=0)
    dgamma = (dy * x_hat).sum(axis=0)
    dx = gamma * inv_std / B * (B * dy - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def spectral_norm_backward(dy, x, W, u, v, sigma):
    lam = np.sum(dy * (x @ W / sigma))
    dW = (x.T @ dy - lam * np.outer(u, v)) / sigma
    dx = dy @ W.T / sigma
    return dx, dW
''',
    "04_losses.py": '''import numpy as np


def bce_with_logits(s, x):
    B = s.shape[0]
    e = np.exp(-np.abs(s))
    L = np.sum(np.maximum(s, 0) - s * x + np.log1p(e)) / B
    p = np.where(s >= 0, 1 / (1 + e), e / (1 + e))
    return L, (p - x) / B


def kl_normal(mu, logvar):
    B = mu.shape[0]
    var = np.exp(logvar)
    L = 0.5 * np.sum(var + mu ** 2 - 1 - logvar) / B
    return L, mu / B, (var - 1) / (2 * B)
''',
    "05_optimizers.py": '''import numpy as np


def adam_step(theta, g, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g ** 2
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta, m, v


def sgd_momentum_step(theta, g, v, lr, momentum):
    v = momentum * v + g
    return theta - lr * v, v
''',
    "06_vae.py": '''import numpy as np


def reparameterize_backward(dz, eps, logvar):
    dmu = dz
    dlogvar = 0.5 * dz * eps * np.exp(logvar / 2)
    return dmu, dlogvar


def logmeanexp(a):
    m = a.max(axis=0)
    return m + np.log(np.mean(np.exp(a - m), axis=0))
''',
    "07_gan.py": '''import numpy as np


def _bce(s, x):
    n = s.shape[0]
    e = np.exp(-np.abs(s))
    L = np.sum(np.maximum(s, 0) - s * x + np.log1p(e)) / n
    p = np.where(s >= 0, 1 / (1 + e), e / (1 + e))
    return L, (p - x) / n


def discriminator_loss(s_real, s_fake):
    L_real, ds_real = _bce(s_real, np.ones_like(s_real))
    L_fake, ds_fake = _bce(s_fake, np.zeros_like(s_fake))
    return L_real + L_fake, ds_real, ds_fake


def generator_loss(s_fake):
    return _bce(s_fake, np.ones_like(s_fake))
''',
}

#: Realistic wrong answers: (what, file, the right line, the wrong one, exercise, label).
MISTAKES = [
    ("a transposed product", "01_dense.py", "dW = x.T @ dy", "dW = dy.T @ x",
     "dense_backward", "dense-2"),
    ("the bias forgotten", "01_dense.py", "return x @ W + b", "return x @ W",
     "dense_forward", "dense-1"),
    ("a missing bias correction", "05_optimizers.py",
     "m_hat = m / (1 - beta1 ** t)\n    v_hat = v / (1 - beta2 ** t)",
     "m_hat = m\n    v_hat = v", "adam_step", "adam-3"),
    ("the variance instead of the standard deviation", "06_vae.py",
     "np.exp(logvar / 2)", "np.exp(logvar)", "reparameterize_backward", "vae-6"),
    ("batch norm without the mean term", "03_stabilisers.py",
     "(B * dy - dbeta - x_hat * dgamma)", "(B * dy - x_hat * dgamma)",
     "batchnorm_backward", "bn-7"),
    ("the sign of the BCE gradient flipped", "04_losses.py", "return L, (p - x) / B",
     "return L, (x - p) / B", "bce_with_logits", "bce-2"),
    ("spectral norm's backward without the sigma term", "03_stabilisers.py",
     "dW = (x.T @ dy - lam * np.outer(u, v)) / sigma", "dW = x.T @ dy / sigma",
     "spectral_norm_backward", "sn-6"),
    ("the naive sigmoid, which overflows", "02_activations.py",
     "e = np.exp(-np.abs(z))\n    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))",
     "return 1 / (1 + np.exp(-z))", "sigmoid", "sigmoid-1"),
    ("the naive log-mean-exp", "06_vae.py",
     "m = a.max(axis=0)\n    return m + np.log(np.mean(np.exp(a - m), axis=0))",
     "return np.log(np.mean(np.exp(a), axis=0))", "logmeanexp", "vae-8"),
    ("dropout without the 1/(1-p) scale in backward", "03_stabilisers.py",
     "return mask * dy / (1 - p)", "return mask * dy", "dropout_backward", "drop-2"),
    ("the KL gradient of the variance, not of logvar", "04_losses.py",
     "(var - 1) / (2 * B)", "(1 - 1 / var) / (2 * B)", "kl_normal", "kl-3"),
    ("the leaky ReLU's slope on the wrong side", "02_activations.py",
     "np.where(y > 0, dy, alpha * dy)", "np.where(y > 0, alpha * dy, dy)",
     "leaky_relu_backward", "lrelu-2"),
    ("SGD's step with the gradient, not the velocity", "05_optimizers.py",
     "return theta - lr * v, v", "return theta - lr * g, v", "sgd_momentum_step", "sgd-2"),
    ("the minimax gradient for the non-saturating loss", "07_gan.py",
     "return _bce(s_fake, np.ones_like(s_fake))",
     "L, ds = _bce(s_fake, np.zeros_like(s_fake))\n    return -L, -ds", "generator_loss",
     "gan-4"),
]


def write(directory, files):
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def reference_workbook(directory):
    """The library's own implementations, with the stubs' signatures."""
    return write(directory, {topic: "from nnscratch.workbook.reference import " + ", ".join(
        e.name for e in EXERCISES if e.topic == topic) + "\n" for topic in TOPICS})


def grade(directory, *names, time_limit=grader.TIME_LIMIT):
    results, modules = grader.grade_workbook(str(directory), names, time_limit)
    return {r.exercise.name: r for r in results}, modules


def check(capsys, directory, *extra):
    """``nnscratch workbook check``: (exit status, stdout, stderr)."""
    status = main(["workbook", "check", str(directory), *extra])
    out = capsys.readouterr()
    return status, out.out, out.err


# -- the stubs ---------------------------------------------------------------------------------
def test_start_writes_one_stub_per_exercise_and_never_overwrites(tmp_path, capsys):
    work = tmp_path / "my_work"
    assert main(["workbook", "start", str(work)]) == 0
    assert sorted(p.name for p in work.iterdir()) == sorted(TOPICS)
    for e in EXERCISES:
        text = (work / e.topic).read_text()
        stub = text[text.index(f"def {e.signature()}:"):]
        stub = stub[:stub.index("raise NotImplementedError") + 30]
        for label in e.labels_of(e.outputs):
            assert f"({label})" in stub, (e.name, label)
        assert e.page in stub
    (work / "01_dense.py").write_text("# my answers\n")
    (work / "07_gan.py").unlink()
    assert main(["workbook", "start", str(work)]) == 0
    assert (work / "01_dense.py").read_text() == "# my answers\n"       # kept
    assert (work / "07_gan.py").read_text() == exercises.stub_source("07_gan.py")   # restored
    assert "kept 01_dense.py" in capsys.readouterr().out


def test_untouched_stubs_are_not_started_and_exit_non_zero(tmp_path, capsys):
    exercises.start(str(tmp_path))
    results, _ = grade(tmp_path)
    assert {r.status for r in results.values()} == {"not started"}
    status, out, _ = check(capsys, tmp_path)
    assert status == 1
    assert f"0 of {len(EXERCISES)} done ({len(EXERCISES)} not started)" in out


# -- right answers are graded right ------------------------------------------------------------
def test_the_library_adapted_to_the_stubs_is_right(tmp_path, capsys):
    results, _ = grade(reference_workbook(tmp_path))
    assert {n: r.status for n, r in results.items()} == {e.name: "right" for e in EXERCISES}
    status, out, err = check(capsys, tmp_path)
    assert status == 0 and err == ""
    assert f"{len(EXERCISES)} of {len(EXERCISES)} done" in out


def test_a_hand_written_solution_is_right(tmp_path):
    results, _ = grade(write(tmp_path, SOLUTION))
    assert {n: r.status for n, r in results.items()} == {e.name: "right" for e in EXERCISES}
    for r in results.values():
        assert r.error <= 1e-7, (r.exercise.name, r.error)


def test_one_exercise_filled_in_is_graded_and_the_rest_not_started(tmp_path, capsys):
    """What a new user does first: start, write dense_forward, check."""
    exercises.start(str(tmp_path))
    path = tmp_path / "01_dense.py"
    path.write_text(path.read_text().replace(
        'raise NotImplementedError("dense_forward: not written yet")', "return x @ W + b", 1))
    status, out, _ = check(capsys, tmp_path)
    assert status == 0
    assert f"1 of {len(EXERCISES)} done ({len(EXERCISES) - 1} not started)" in out
    status, out, _ = check(capsys, tmp_path, "dense_forward")
    assert status == 0 and "1 of 1 done" in out


# -- wrong answers are graded wrong, naming the equation ---------------------------------------
@pytest.mark.parametrize("what, topic, right, wrong, name, label", MISTAKES,
                         ids=[m[0] for m in MISTAKES])
def test_a_realistic_mistake_is_wrong_and_names_its_equation(tmp_path, capsys, what, topic,
                                                             right, wrong, name, label):
    assert right in SOLUTION[topic]
    write(tmp_path, {**SOLUTION, topic: SOLUTION[topic].replace(right, wrong)})
    results, _ = grade(tmp_path)
    assert results[name].status == "wrong", what
    assert label in results[name].labels, (what, results[name].labels)
    others = {n: r.status for n, r in results.items() if n != name}
    assert set(others.values()) == {"right"}, others
    status, out, _ = check(capsys, tmp_path)
    assert status in (1, 2)
    assert f"{name}: wrong. Re-read eq" in out and f"({label})" in out
    assert "smallest failing input:" in out


def test_the_gradient_check_is_independent_of_the_library(tmp_path, monkeypatch):
    """Were the library's dense backward itself wrong (dW doubled), a student copying it
    would agree with it, and the finite differences would still catch both."""
    from nnscratch.workbook import reference
    right = reference.dense_backward

    def doubled(dy, x, W):
        dx, dW, db = right(dy, x, W)
        return dx, 2 * dW, db
    monkeypatch.setattr(reference, "dense_backward", doubled)
    write(tmp_path, {"01_dense.py": "from nnscratch.workbook.reference import dense_backward\n"})
    r = grade(tmp_path, "dense_backward")[0]["dense_backward"]
    assert r.status == "wrong" and "dW is not the gradient (finite differences" in r.detail
    assert r.labels == ["dense-2"]


def test_the_smallest_failing_input_is_reported(tmp_path):
    """The mistake in the BCE's gradient shows on every input; the smallest is reported."""
    write(tmp_path, {**SOLUTION, "04_losses.py": SOLUTION["04_losses.py"].replace(
        "return L, (p - x) / B", "return L, (x - p) / B")})
    results, _ = grade(tmp_path, "bce_with_logits")
    assert "single-row batch: s (1, 5), x (1, 5)" in results["bce_with_logits"].detail


def test_an_optimizer_step_reports_the_error_of_its_step(tmp_path):
    """Without the bias correction Adam's first step is 3.16 times too large (sqrt(1000) /
    10), a step error of 0.68; theta's relative error (1e-3) alone looks like a near miss."""
    write(tmp_path, {"05_optimizers.py": SOLUTION["05_optimizers.py"].replace(
        "m_hat = m / (1 - beta1 ** t)\n    v_hat = v / (1 - beta2 ** t)",
        "m_hat = m\n    v_hat = v")})
    r = grade(tmp_path, "adam_step")[0]["adam_step"]
    assert r.status == "wrong" and r.error < 1e-2
    assert "(its step theta_new - theta by 6.8e-01)" in r.detail


def test_a_mistake_everywhere_is_not_reported_on_an_edge_case(tmp_path):
    """A log-sum-exp where the mean belongs (no log K) is wrong on every input with K > 1:
    it is reported on a small random input, not on the log-weights of -1000, whose
    description would send the student looking for an overflow."""
    write(tmp_path, {"06_vae.py": SOLUTION["06_vae.py"].replace(
        "np.log(np.mean(np.exp(a - m), axis=0))", "np.log(np.sum(np.exp(a - m), axis=0))")})
    r = grade(tmp_path, "logmeanexp")[0]["logmeanexp"]
    assert r.status == "wrong" and "smallest failing input: random, K = 3" in r.detail


def test_an_edge_case_alone_catches_a_mistake(tmp_path):
    """A BCE that is right on moderate logits but takes log(sigmoid(s)): right on the random
    inputs, wrong on the logits of +-100 that the docs discuss."""
    naive = SOLUTION["04_losses.py"].replace(
        "L = np.sum(np.maximum(s, 0) - s * x + np.log1p(e)) / B",
        "p0 = 1 / (1 + np.exp(-s))\n    L = -np.sum(x * np.log(p0) + (1 - x) * np.log(1 - p0)) / B")
    write(tmp_path, {"04_losses.py": naive})
    r = grade(tmp_path, "bce_with_logits")[0]["bce_with_logits"]
    assert r.status == "wrong" and "logits +-100" in r.detail and "bce-1" in r.labels


# -- bad input -----------------------------------------------------------------------------------
def test_a_directory_that_is_not_a_workbook_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["workbook", "check", str(tmp_path / "nowhere")]) == 2
    assert "is not a workbook" in one_error_line(capsys)
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["workbook", "check", str(tmp_path)]) == 2
    assert "nnscratch workbook start" in one_error_line(capsys)


def test_an_unknown_exercise_name_is_one_line_and_status_2(tmp_path, capsys):
    exercises.start(str(tmp_path))
    assert main(["workbook", "check", str(tmp_path), "dense_sideways"]) == 2
    assert "no exercise or chapter 'dense_sideways'" in one_error_line(capsys)


def test_a_module_that_fails_to_import_shows_its_traceback_then_one_verdict(tmp_path, capsys):
    write(tmp_path, {**SOLUTION, "02_activations.py": SOLUTION["02_activations.py"] +
                     "\nSCALE = 1 / 0\n"})
    status, out, err = check(capsys, tmp_path)
    assert status == 2
    lines = err.strip().splitlines()
    assert lines[0].startswith("Traceback") and "02_activations.py" in err
    assert "ZeroDivisionError" in err and "nnscratch/workbook" not in err   # the student's frames
    assert lines[-1] == ("nnscratch: error: 02_activations.py failed to import "
                         "(ZeroDivisionError at line 16): fix it and check again")
    assert "sigmoid                  02_activations.py  import error" in out
    assert "dense_forward            01_dense.py        right" in out     # the others graded


def test_a_syntax_error_is_reported_with_its_line(tmp_path, capsys):
    write(tmp_path, {"01_dense.py": "def dense_forward(x, W, b)\n    return x @ W + b\n"})
    status, _, err = check(capsys, tmp_path)
    assert status == 2 and "SyntaxError" in err
    assert err.strip().splitlines()[-1].endswith("(SyntaxError at line 1): fix it and check again")


def test_a_result_of_the_wrong_shape_is_named(tmp_path, capsys):
    write(tmp_path, {"01_dense.py": SOLUTION["01_dense.py"].replace("return dx, dW, db",
                                                                    "return dx, dW.T, db")})
    status, out, err = check(capsys, tmp_path)
    assert status == 2
    assert err.strip() == ("nnscratch: error: dense_backward: dW has shape (3, 4), expected "
                           "(4, 3)")
    assert "dense_backward: wrong. Re-read eq. (dense-2) in docs/dense.md" in out


def test_the_wrong_number_of_results_is_named(tmp_path, capsys):
    write(tmp_path, {"01_dense.py": SOLUTION["01_dense.py"].replace("return dx, dW, db",
                                                                    "return dW, db")})
    status, _, err = check(capsys, tmp_path)
    assert status == 2
    # one line that names the function once
    assert "nnscratch: error: dense_backward returned 2 values; expected 3: (dx, dW, db)" in err


def test_an_infinite_loop_is_stopped_and_reported(tmp_path, capsys):
    write(tmp_path, {"01_dense.py": SOLUTION["01_dense.py"].replace(
        "    return x @ W + b", "    while True:\n        pass")})
    started = time.perf_counter()
    status, out, _ = check(capsys, tmp_path, "--time-limit", "0.3")
    assert time.perf_counter() - started < 10
    assert status == 1
    assert "dense_forward            01_dense.py        wrong" in out
    assert "still running after 0.3 s (an infinite loop?): stopped" in out
    assert "dense_backward           01_dense.py        right" in out     # the next one runs


def test_an_infinite_loop_outside_the_main_thread_is_reported(tmp_path):
    """Where no alarm signal can be used, the exercise runs in a thread given up on. (The
    hang here is a sleep: a thread cannot be stopped, and a busy loop would spin on through
    the rest of the suite.)"""
    import threading
    write(tmp_path, {"01_dense.py": "import time\n" + SOLUTION["01_dense.py"].replace(
        "    return x @ W + b", "    time.sleep(5)")})
    box = {}
    worker = threading.Thread(target=lambda: box.update(grade(tmp_path, "01_dense",
                                                              time_limit=0.3)[0]))
    worker.start()
    worker.join(20)
    assert box["dense_forward"].status == "wrong" and "still running" in box["dense_forward"].detail
    assert box["dense_backward"].status == "right"


def test_a_student_error_is_wrong_with_its_line(tmp_path):
    write(tmp_path, {"01_dense.py": SOLUTION["01_dense.py"].replace("dx = dy @ W.T",
                                                                    "dx = dy @ W")})
    r = grade(tmp_path, "dense_backward")[0]["dense_backward"]
    assert r.status == "wrong" and "raised ValueError at line 11 of 01_dense.py" in r.detail


# -- training with the student's functions ------------------------------------------------------
QUICK = ["--latent", "2", "--limit", "256", "--test-limit", "64", "--batch-size", "64",
         "--epochs", "1", "--quiet", "--no-figures"]


def _test_neg_elbo(out):
    return json.loads((out / "log.jsonl").read_text().splitlines()[-1])["test_neg_elbo"]


def test_train_vae_with_the_library_through_the_workbook_matches_the_library(tmp_path, capsys):
    (tmp_path / "work").mkdir()
    work = reference_workbook(tmp_path / "work")
    assert main(["train", "vae", *QUICK, "--out", str(tmp_path / "lib")]) == 0
    assert main(["train", "vae", *QUICK, "--out", str(tmp_path / "wb"),
                 "--workbook", str(work)]) == 0
    err = capsys.readouterr().err
    assert "the student's dense_forward, dense_backward" in err
    called = err[err.index("the student's functions this run called:"):].splitlines()[0]
    for name in ("dense_forward", "dense_backward", "leaky_relu_backward", "bce_with_logits",
                 "kl_normal", "reparameterize_backward", "adam_step", "logmeanexp"):
        assert f"{name} (" in called, name
    lib, wb = _test_neg_elbo(tmp_path / "lib"), _test_neg_elbo(tmp_path / "wb")
    assert lib == wb                   # the same operations in the same order: bit for bit
    with np.load(tmp_path / "wb" / "checkpoint.npz") as f:
        run = json.loads(str(f["loop/state"]))["run"]
    assert run["workbook"]["student"][:2] == ["dense_forward", "dense_backward"]
    assert vars(Dense)["forward"].__module__ == "nnscratch.dense"     # the library's again


def test_train_uses_only_the_functions_graded_right(tmp_path, capsys):
    (tmp_path / "work").mkdir()
    work = write(tmp_path / "work", {
        "01_dense.py": SOLUTION["01_dense.py"].replace("dW = x.T @ dy", "dW = 2 * x.T @ dy"),
        "04_losses.py": SOLUTION["04_losses.py"]})
    assert main(["train", "vae", *QUICK, "--out", str(tmp_path / "run"),
                 "--workbook", str(work)]) == 0
    err = capsys.readouterr().err
    assert "the student's dense_forward, bce_with_logits, kl_normal; the library's everything " \
           "else (not right yet: dense_backward" in err
    called = err[err.index("this run called:"):].splitlines()[0]
    assert "dense_backward" not in called and "bce_with_logits (" in called


def test_train_gan_with_the_workbook(tmp_path, capsys):
    """The stable recipe goes through batch norm, spectral norm, the sigmoid and both GAN
    losses: each plugged, each called."""
    (tmp_path / "work").mkdir()
    work = write(tmp_path / "work", SOLUTION)
    status = main(["train", "gan", "--limit", "128", "--test-limit", "32", "--batch-size", "64",
                   "--epochs", "1", "--quiet", "--no-figures", "--out", str(tmp_path / "run"),
                   "--workbook", str(work)])
    err = capsys.readouterr().err
    assert status == 0, err
    called = err[err.index("this run called:"):].splitlines()[0]
    for name in ("dense_forward", "dense_backward", "leaky_relu_backward", "sigmoid_backward",
                 "sigmoid", "batchnorm_backward", "spectral_norm_backward",
                 "discriminator_loss", "generator_loss", "adam_step"):
        assert f"{name} (" in called, name


def test_a_workbook_that_fails_to_import_stops_training_with_status_2(tmp_path, capsys):
    work = write(tmp_path, {"01_dense.py": "import nonexistent_module\n"})
    assert main(["train", "vae", *QUICK, "--out", str(tmp_path / "run"),
                 "--workbook", str(work)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "ModuleNotFoundError" in "\n".join(err)
    assert err[-1].startswith("nnscratch: error: 01_dense.py failed to import")


def test_plugged_restores_the_library_even_on_an_error():
    library = {(o, a): vars(o)[a] for plugs in plug.PLUGS.values() for o, a, _ in plugs}
    functions = {name: (lambda *a: None) for name in plug.PLUGS}
    with pytest.raises(RuntimeError):
        with plug.plugged(functions):
            assert vars(Dense)["forward"] is not library[Dense, "forward"]
            raise RuntimeError
    assert all(vars(o)[a] is f for (o, a), f in library.items())


def _reference_functions(tmp_path):
    results, modules = grade(reference_workbook(tmp_path))
    return {n: getattr(modules[r.exercise.topic], n) for n, r in results.items()}


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_the_plugs_compute_what_the_library_computes_in_float64(tmp_path, kind):
    """Three steps of the VAE (classic) and of the GAN (stable recipe: batch norm, spectral
    norm, both GAN losses) with the library's answers plugged in: the same losses and
    parameters as the library's own path, bit for bit (in float64, where a cast to the
    wrong dtype would show)."""
    import nnscratch.models.gan  # noqa: F401  (registers the GAN trainer)
    from nnscratch.backend import Backend
    from nnscratch.models.vae import VAETrainer
    from nnscratch.training.trainer import Trainer
    config = {"preset": "classic"} if kind == "vae" else \
        {"preset": "mlp", "G_hidden": [32, 16], "D_hidden": [16, 8]}
    x = np.random.default_rng(0).random((16, 784)).astype(np.float32)
    trained = []
    for functions in ({}, _reference_functions(tmp_path)):
        trainer = Trainer.registry[kind](dict(config), backend=Backend("numpy", "float64", 0))
        with plug.plugged(functions) as calls:
            metrics = [trainer.step(x[:8]), trainer.step(x[8:]), trainer.step(x[:8])]
        trained.append((metrics, {k: np.array(p) for k, p in trainer.parameters()}, calls))
    (m_lib, p_lib, _), (m_wb, p_wb, calls) = trained
    assert "adam_step" in calls and "dense_backward" in calls
    if kind == "gan":
        assert {"batchnorm_backward", "spectral_norm_backward", "generator_loss"} <= set(calls)
    assert m_wb == m_lib
    for name in p_lib:
        np.testing.assert_array_equal(p_wb[name], p_lib[name], err_msg=name)
    assert VAETrainer is Trainer.registry["vae"]


# -- the docs page ------------------------------------------------------------------------------
def test_the_docs_list_every_exercise_with_its_equations_and_show_a_real_stub():
    import pathlib
    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "workbook.md").read_text()
    rows = text.splitlines()
    for e in EXERCISES:
        row = [r for r in rows if r.startswith(f"| `{e.topic}` | `{e.name}(")]
        assert len(row) == 1, e.name
        assert f"`{e.signature()}" in row[0]
        assert all(f"({label})" in row[0] for label in e.labels_of(e.outputs)), e.name
    shown = text[text.index("```python\n") + 10:]
    shown = shown[:shown.index("```")]
    assert shown in exercises.stub_source("01_dense.py")


def test_nan_and_infinite_results_are_wrong(tmp_path):
    write(tmp_path, {"02_activations.py": SOLUTION["02_activations.py"].replace(
        "return dy * y * (1 - y)", "return np.full(dy.shape, np.nan)")})
    r = grade(tmp_path, "sigmoid_backward")[0]["sigmoid_backward"]
    assert r.status == "wrong" and "dx holds NaN or infinite entries" in r.detail


def test_train_with_a_directory_that_is_not_a_workbook_is_one_line_and_status_2(tmp_path,
                                                                                capsys):
    assert main(["train", "vae", *QUICK, "--out", str(tmp_path / "run"),
                 "--workbook", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("nnscratch: error: ") and "is not a workbook" in err[-1]
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


@pytest.mark.parametrize("argv", [["workbook"], ["workbook", "start"], ["workbook", "check"]])
def test_help_for_the_workbook_commands(argv, capsys):
    assert main([*argv, "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: nnscratch workbook")


def test_the_workbook_command_needs_an_action_and_a_directory(capsys):
    assert main(["workbook"]) == 2
    one_error_line(capsys)
    assert main(["workbook", "check"]) == 2
    assert "DIR" in one_error_line(capsys)


def test_every_input_has_the_arguments_of_its_stub_in_order():
    """The student's function is called by position, so the inputs must follow the stub."""
    for e in EXERCISES:
        for case in e.cases(np.random.default_rng(0)):
            assert tuple(case.args) == e.args, (e.name, case.description)


def test_the_student_may_name_the_arguments_differently(tmp_path):
    write(tmp_path, {"01_dense.py": "def dense_forward(inputs, weights, bias):\n"
                                    "    return inputs @ weights + bias\n"})
    assert grade(tmp_path, "dense_forward")[0]["dense_forward"].status == "right"


def test_a_chapter_is_named_by_its_file_its_number_or_its_name():
    vae = [e.name for e in grader.select(["06_vae"])]
    assert vae == ["reparameterize_backward", "logmeanexp"]
    for name in ("06_vae.py", "06", "vae"):
        assert [e.name for e in grader.select([name])] == vae, name
    with pytest.raises(grader.WorkbookError, match="the chapters: 01_dense, 02_activations"):
        grader.select(["08"])
