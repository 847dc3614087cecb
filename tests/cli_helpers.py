"""What the command-line tests share: a quick VAE run and the check of a one-line error."""
import pathlib

from nnscratch.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
QUICK = ["--latent", "2", "--limit", "64", "--test-limit", "50", "--batch-size", "32",
         "--quiet", "--no-figures"]


def train(out, *extra):
    """``nnscratch train vae`` for a few steps into ``out``; the exit status."""
    return main(["train", "vae", *QUICK, "--out", str(out), *extra])


def one_error_line(capsys):
    """The single ``nnscratch: error: ...`` line the command printed to stderr."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnscratch: error: "), err
    return err[0]
