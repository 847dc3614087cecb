"""The gradient checker itself, on arrays that behave like CuPy's without a GPU."""
import numpy as np

from nnscratch.gradcheck import check_gradients, numerical_gradient, relative_error


class ViewIndexing(np.ndarray):
    """A NumPy array whose indexing by a full tuple of integers returns a 0-d *view*, as
    CuPy's does (NumPy's returns a copy, a scalar)."""

    def __getitem__(self, index):
        if (isinstance(index, tuple) and len(index) == self.ndim
                and all(isinstance(i, (int, np.integer)) for i in index)):
            return super().__getitem__(index + (Ellipsis,))
        return super().__getitem__(index)


def cubes():
    theta = np.random.default_rng(0).uniform(-2, 2, size=(3, 4)).view(ViewIndexing)

    def f():
        return np.sum(np.asarray(theta) ** 3)

    return theta, f, 3 * np.asarray(theta) ** 2


def test_the_stand_in_aliases_like_cupy():
    theta, _, _ = cubes()
    entry = theta[1, 2]
    theta[1, 2] = 7.0
    assert entry.shape == () and float(entry) == 7.0


def test_numerical_gradient_is_right_when_indexing_returns_views():
    theta, f, exact = cubes()
    before = np.array(theta)
    numeric = numerical_gradient(f, theta)
    assert relative_error(exact, numeric) < 1e-8              # was 0.5 with a 0-d view
    assert np.array_equal(np.asarray(theta), before)          # restored exactly


def test_check_gradients_passes_a_right_and_fails_a_wrong_gradient_on_views():
    theta, f, exact = cubes()
    assert check_gradients(f, {"theta": theta}, {"theta": exact})["theta"] < 1e-8
    wrong = {"theta": 2 * np.asarray(theta) ** 2}
    assert check_gradients(f, {"theta": theta}, wrong)["theta"] > 0.1
