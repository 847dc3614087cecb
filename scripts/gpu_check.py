"""The GPU check: the test suite with CuPy, the GPU step benchmark against PyTorch on CUDA, and
a short train / sample / eval run of the command line on CuPy, in one command and a few
minutes, with no network. Writes a markdown summary (and every part's full log beside it).

    make gpu-check GPU_CHECK_SUMMARY=/some/dir/gpu_check.md
    PYTHONPATH=. python3 scripts/gpu_check.py --summary /some/dir/gpu_check.md
    PYTHONPATH=. python3 scripts/gpu_check.py --dry-run       # the same logic on NumPy, < 1 min

Runs from the source tree (no install needed: the tree is put on ``PYTHONPATH`` of every
part). A part that fails, or runs out of its time, is reported as such and the next one
still runs; the exit status is 0 only if every part passed. The end-to-end run uses the full
Fashion-MNIST when :mod:`nnscratch.datasets.loading` finds it without downloading
(``$NNSCRATCH_DATA_DIR``, the cache, ``/usr/share/datasets``), else the embedded subset.
pytest-xdist and array-api-strict are used when installed, never required.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: seconds each part may take at most (the whole check: about 6 minutes on one H200)
BUDGET = {"pytest": 170, "bench": 120, "cli": 70}


class Part:
    """One part of the check: its status, time, a one-line result and details."""

    def __init__(self, name):
        self.name, self.status, self.seconds, self.result, self.details = name, "-", 0.0, "", []


def run(cmd, log_path, timeout, env=None):
    """Run ``cmd`` with its output into ``log_path``; ``(returncode or None on timeout, text)``."""
    (code,), (text,) = run_all([cmd], [log_path], timeout, env)
    return code, text


def run_all(cmds, log_paths, timeout, env=None):
    """Run ``cmds`` at once, each with its output into its log, for at most ``timeout``
    seconds in all (then killed, with their children): lists of return codes (None: timed
    out) and of log texts."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    started = []
    for cmd, log_path in zip(cmds, log_paths):
        log = open(log_path, "w")
        log.write("$ " + " ".join(map(str, cmd)) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        started.append((proc, log))
    deadline, codes = time.perf_counter() + timeout, []
    for proc, log in started:
        try:
            codes.append(proc.wait(timeout=max(0.1, deadline - time.perf_counter())))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
            proc.wait()
            codes.append(None)
            log.write(f"\n[gpu_check] timed out after {timeout} s\n")
        log.close()
    return codes, [Path(p).read_text(errors="replace") for p in log_paths]


def environment(dry_run):
    """Versions and the device, as lines of the summary."""
    lines = [f"- Python {platform.python_version()}, {platform.machine()}, "
             f"{os.cpu_count()} CPU cores" + (" (dry run: NumPy only)" if dry_run else "")]
    for mod in ("numpy", "cupy", "torch", "array_api_strict", "xdist"):
        if importlib.util.find_spec(mod) is None:
            lines.append(f"- {mod}: not installed")
            continue
        try:
            m = __import__(mod)
            lines.append(f"- {mod} {getattr(m, '__version__', '?')}")
        except Exception as err:   # noqa: BLE001 - a broken install is a finding
            lines.append(f"- {mod}: import failed ({type(err).__name__}: {err})")
    try:
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        lines.append(f"- GPU: {name}, {props['totalGlobalMem'] / 2**30:.0f} GiB, CUDA runtime "
                     f"{cupy.cuda.runtime.runtimeGetVersion()}, driver "
                     f"{cupy.cuda.runtime.driverGetVersion()}")
    except Exception as err:       # noqa: BLE001
        lines.append(f"- GPU: none usable ({type(err).__name__}: {err})")
    return lines


def have_gpu():
    sys.path.insert(0, str(ROOT))
    try:
        import nnscratch as nn
        nn.Backend("cupy")
        return True
    except Exception:              # noqa: BLE001
        return False


# -- part 1: the test suite ----------------------------------------------------------------
def part_pytest(out, dry_run, budget):
    """The suite in shards run at once (pytest-xdist's ``-n`` when it is installed)."""
    part = Part("test suite (pytest)")
    if dry_run:
        files = ["tests/test_gradcheck.py", "tests/test_counter_rng.py", "tests/test_optim.py"]
    else:
        files = [f"tests/{p.name}" for p in sorted((ROOT / "tests").glob("test_*.py"))
                 if p.name not in ("test_notebooks.py", "test_docs.py")]
    base = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider",
            "-o", "junit_family=xunit1"]
    if importlib.util.find_spec("array_api_strict") is None:
        base += ["-k", "not strict"]
        part.details.append("array-api-strict is not installed: its parametrisations "
                            "were deselected")
    cores = os.cpu_count() or 1
    if importlib.util.find_spec("xdist") is not None and not dry_run:
        base += ["-n", str(min(12, cores))]
        shards = [files]
    else:
        shards = shard_files(files, 2 if dry_run else max(1, min(8, cores // 2)))
    threads = str(max(1, cores // len(shards)))
    env = {k: os.environ.get(k, threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    xmls = [out / f"pytest_{j}.xml" for j in range(len(shards))]
    cmds = [base + [f"--junitxml={xml}"] + shard for xml, shard in zip(xmls, shards)]
    t0 = time.perf_counter()
    codes, texts = run_all(cmds, [out / f"pytest_{j}.log" for j in range(len(shards))],
                           budget, env)
    part.seconds = time.perf_counter() - t0
    (out / "pytest.log").write_text("\n".join(texts))
    counts = {}
    for text in texts:
        summary = [line for line in text.splitlines()
                   if re.search(r"\d+ (passed|failed|skipped|deselected|error)", line)]
        for n, what in re.findall(r"(\d+) (\w+)", summary[-1] if summary else ""):
            counts[what] = counts.get(what, 0) + int(n)
    part.result = (", ".join(f"{n} {w}" for w, n in counts.items()) or "no summary line") + \
        f" ({len(shards)} shard{'s' if len(shards) > 1 else ''})"
    # 5: a shard whose tests were all deselected
    if any(code is None for code in codes):
        part.status = "TIMEOUT"
    elif all(code in (0, 5) for code in codes) and not counts.get("failed"):
        part.status = "PASS"
    else:
        part.status = "FAIL"
    part.details += junit_details(xmls)
    part.details += [line for text in texts for line in text.splitlines()
                     if line.startswith(("FAILED", "ERROR"))]
    return part


def shard_files(files, n):
    """``files`` in ``n`` groups of about equal size (bytes of source, largest first)."""
    groups = [[] for _ in range(min(n, len(files)))]
    sizes = [0] * len(groups)
    for f in sorted(files, key=lambda f: -(ROOT / f).stat().st_size):
        j = sizes.index(min(sizes))
        groups[j].append(f)
        sizes[j] += (ROOT / f).stat().st_size
    return groups


def junit_details(xmls):
    """Counts of the CuPy parametrisations and fused-kernel tests by outcome."""
    cases = []
    for xml in xmls:
        try:
            cases += list(ET.parse(xml).getroot().iter("testcase"))
        except (OSError, ET.ParseError):
            return [f"(no JUnit XML in {Path(xml).name}: a shard did not finish)"]
    counts = {}
    for case in cases:
        name = case.get("name", "")
        if not (re.search(r"[\[-]cupy[\]-]", name) or "fused_kernel" in name):
            continue
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "skipped"
        counts[outcome] = counts.get(outcome, 0) + 1
    if not counts:
        return ["CuPy / GPU tests: none ran"]
    return ["CuPy / GPU tests: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))]


# -- part 2: the step benchmark --------------------------------------------------------------
def part_bench(out, dry_run, budget):
    part = Part("step benchmark vs PyTorch")
    json_path = out / "bench_steps_gpu.json"
    cmd = [sys.executable, "benchmarks/bench_steps.py", "--no-memory", "--json", str(json_path)]
    if dry_run:
        cmd += ["--devices", "cpu", "--models", "vae", "--rounds", "1", "--steps", "1"]
    else:
        cmd += ["--devices", "gpu", "--rounds", "10"]
    if os.environ.get("BENCH_BEFORE"):        # an older tree to time alongside (bench --before)
        cmd += ["--before", os.environ["BENCH_BEFORE"]]
    if importlib.util.find_spec("torch") is None:
        cmd += ["--no-torch"]
        part.details.append("torch is not installed: nnscratch and the GEMM bound only")
    t0 = time.perf_counter()
    code, text = run(cmd, out / "bench.log", budget)
    part.seconds = time.perf_counter() - t0
    tables = [line for line in text.splitlines() if line.startswith(("|", "## ", "GPU: "))]
    part.details += tables
    rows = [line for line in tables if line.startswith("| ")
            and not line.startswith(("| model", "| ---"))]
    skipped = any(line.startswith("GPU: skipped") for line in tables)
    if code is None:
        part.status = "TIMEOUT"
    elif code != 0 or not rows or (skipped and not dry_run):
        part.status = "FAIL"
        part.details += text.strip().splitlines()[-5:]
    else:
        part.status = "PASS"
    part.result = f"{len(rows)} model(s) timed" + (f"; {json_path.name} saved"
                                                   if json_path.exists() else "")
    return part


# -- part 3: the command line end to end -----------------------------------------------------
def full_fashion_mnist():
    """True when the full Fashion-MNIST (both splits) is on disk, found without downloading."""
    sys.path.insert(0, str(ROOT))
    from nnscratch.datasets import loading
    return all(loading.locate("fashion-mnist", split) is not None for split in ("train", "test"))


def part_cli(out, dry_run, budget):
    part = Part("train / sample / eval on the command line")
    backend = "numpy" if dry_run else "cupy"
    work = Path(tempfile.mkdtemp(prefix="nnscratch_gpu_check_"))
    full = full_fashion_mnist()
    data = ["--dataset", "fashion-mnist"] if full else ["--dataset", "fashion-mnist-mini"]
    if dry_run:
        data += ["--limit", "512", "--test-limit", "200"]
    part.details.append(("full Fashion-MNIST (60,000 + 10,000)" if full else
                         "embedded fashion-mnist-mini (the full set was not found under "
                         "$NNSCRATCH_DATA_DIR, the cache or /usr/share/datasets)")
                        + f", backend {backend}")
    ckpt = work / "vae" / "checkpoint.npz"
    steps = [
        ("train", ["train", "vae", "--preset", "classic", *data, "--epochs", "1",
                   "--backend", backend, "--out", str(work / "vae"), "--no-figures"]),
        ("sample", ["sample", "--checkpoint", str(ckpt), "--n", "64", "--out",
                    str(work / "samples.npy"), "--backend", backend]),
        ("eval", ["eval", "--checkpoint", str(ckpt), "--backend", backend, "--samples",
                  "2000" if dry_run else "10000"] + (["--limit", "200"] if dry_run else [])),
    ]
    env = {"NNSCRATCH_CACHE": str(work / "cache")} if not full else {}
    deadline = time.perf_counter() + budget
    t0, status = time.perf_counter(), "PASS"
    for name, argv in steps:
        left = max(1, int(deadline - time.perf_counter()))
        code, text = run([sys.executable, "-m", "nnscratch", *argv], out / f"cli_{name}.log",
                         left, env)
        last = [line for line in text.splitlines()[1:] if line.strip()]
        wanted = [line for line in last if re.search(
            r"epoch \d+/\d+ |neg_elbo|iwae|frechet|classes_covered|done:|error", line)]
        part.details.append(f"`{name}`: " + ("timed out" if code is None else f"exit {code}"))
        part.details += ["    " + line.strip() for line in (wanted or last[-3:])[-8:]]
        if code != 0:
            status = "TIMEOUT" if code is None else "FAIL"
            break
    part.seconds = time.perf_counter() - t0
    part.status = status
    part.result = "train 1 epoch, sample 64, eval" + ("" if status == "PASS" else f": {status}")
    shutil.rmtree(work, ignore_errors=True)
    return part


# -- the summary -------------------------------------------------------------------------------
def write_summary(path, env_lines, parts, started, dry_run):
    total = time.perf_counter() - started
    lines = [f"# nnscratch GPU check{' (dry run)' if dry_run else ''}", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {total:.0f} s in all.", "",
             *env_lines, "", "| part | status | seconds | result |", "| --- | --- | ---: | --- |"]
    lines += [f"| {p.name} | {p.status} | {p.seconds:.0f} | {p.result} |" for p in parts]
    for p in parts:
        lines += ["", f"## {p.name}: {p.status}", ""]
        in_table = False
        for d in p.details:
            is_row = d.startswith("|")
            if is_row and not in_table:
                lines.append("")
            in_table = is_row
            if d.startswith("## "):
                lines += ["", f"**{d[3:]}**"]
            else:
                lines.append(d if is_row or d.startswith("    ") else f"- {d}")
    lines += ["", "Full logs beside this file: pytest.log, bench.log, cli_*.log."]
    Path(path).write_text("\n".join(lines) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--summary", default=os.environ.get("GPU_CHECK_SUMMARY") or None,
                    help="the markdown summary to write (default $GPU_CHECK_SUMMARY, else "
                         "runs/gpu_check/summary.md); logs go to the same directory")
    ap.add_argument("--dry-run", action="store_true",
                    help="NumPy only, a few tests, one tiny benchmark round: checks this "
                         "script on a machine without a GPU in under a minute")
    ap.add_argument("--parts", default="pytest,bench,cli", help="which parts, in order")
    args = ap.parse_args(argv)
    summary = Path(args.summary or ROOT / "runs" / "gpu_check" / "summary.md").resolve()
    out = summary.parent
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    env_lines = environment(args.dry_run)
    if not args.dry_run and not have_gpu():
        env_lines.append("- **No usable GPU: CuPy parts will fail; use --dry-run to check "
                         "the script on a CPU.**")
    parts = []
    runners = {"pytest": part_pytest, "bench": part_bench, "cli": part_cli}
    for name in [p.strip() for p in args.parts.split(",") if p.strip()]:
        print(f"[gpu_check] {name} ...", file=sys.stderr, flush=True)
        try:
            part = runners[name](out, args.dry_run, BUDGET[name])
        except Exception as err:   # noqa: BLE001 - one broken part must not hide the others
            part = Part(name)
            part.status, part.result = "ERROR", f"{type(err).__name__}: {err}"
        parts.append(part)
        print(f"[gpu_check] {name}: {part.status} ({part.seconds:.0f} s) {part.result}",
              file=sys.stderr, flush=True)
        write_summary(summary, env_lines, parts, started, args.dry_run)
    print(f"[gpu_check] summary: {summary}", file=sys.stderr)
    print(summary.read_text())
    return 0 if all(p.status == "PASS" for p in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
