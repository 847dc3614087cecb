"""The GPU check script's logic, on the CPU: what it reads from pytest and the benchmark and
the summary it writes (``make gpu-check-dry`` runs the whole script on NumPy)."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)

JUNIT = """<?xml version="1.0"?><testsuites><testsuite>
<testcase name="test_dense_gradcheck[cupy-he]"/>
<testcase name="test_dense_gradcheck[numpy-he]"/>
<testcase name="test_kl[cupy]"><failure message="x"/></testcase>
<testcase name="test_round_trip[strict-cupy-2]"><skipped/></testcase>
<testcase name="test_the_fused_kernel_draws_what_the_reference_draws[float32]"/>
<testcase name="test_the_fused_cuda_update_compiled_for_the_host_agrees"/>
<testcase name="test_the_stand_in_aliases_like_cupy"/>
</testsuite></testsuites>"""


def test_junit_counts_only_the_cupy_and_fused_tests(tmp_path):
    (tmp_path / "p.xml").write_text(JUNIT)
    assert gpu_check.junit_details([tmp_path / "p.xml"]) == [
        "CuPy / GPU tests: 1 failed, 2 passed, 1 skipped"]
    assert "did not finish" in gpu_check.junit_details([tmp_path / "missing.xml"])[0]


def test_a_failing_part_does_not_stop_the_others_and_every_part_is_summarised(
        tmp_path, monkeypatch):
    def broken(out, dry_run, budget):
        raise RuntimeError("boom")

    def fine(out, dry_run, budget):
        part = gpu_check.Part("bench")
        part.status, part.result = "PASS", "1 model(s) timed"
        part.details = ["## Training step, GPU float32", "| model | ms |", "| --- | ---: |",
                        "| vae | 1.0 |"]
        return part

    monkeypatch.setattr(gpu_check, "part_pytest", broken)
    monkeypatch.setattr(gpu_check, "part_bench", fine)
    summary = tmp_path / "s.md"
    assert gpu_check.main(["--dry-run", "--parts", "pytest,bench",
                           "--summary", str(summary)]) == 1
    text = summary.read_text()
    assert "| pytest | ERROR | 0 | RuntimeError: boom |" in text
    assert "| bench | PASS |" in text
    assert "\n\n| model | ms |\n| --- | ---: |\n| vae | 1.0 |" in text
