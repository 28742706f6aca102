"""kill -9 during finalize leaves its .NAME.*.partial staging directory (issue 28 item 7): the next finalize beside
it removes the ones it can prove dead (their owner's lock is free: no live process holds it), and says so;
a live finalize's is left alone."""
import subprocess
import sys
import time

from hwnas.finalize import finalize
from hwnas.finalize.bundle import remove_stale_stages, staging_dir

HOLD = """
import sys, time
from pathlib import Path
from hwnas.finalize.bundle import staging_dir
with staging_dir(Path(sys.argv[1]), log=lambda s: None) as stage:
    (stage / "model.onnx").write_bytes(b"half a model")
    print(stage, flush=True)
    time.sleep(600)
"""


def _holder(out):
    """A real process inside staging_dir, as a finalize is while it exports and measures."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line, "the holder ended before it staged"
    return proc, line


def _stages(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def test_a_killed_finalize_s_stage_is_removed_and_a_live_one_kept(tmp_path):
    out = tmp_path / "dist"
    live, live_stage = _holder(out)
    dead, dead_stage = _holder(out)  # (each finalize cleans up first: this one found nothing stale)
    dead.kill()  # SIGKILL: no finally, no cleanup
    dead.wait()
    try:
        assert len(_stages(tmp_path)) == 2
        said = []
        with staging_dir(out, log=said.append) as stage:
            assert stage.is_dir()
        assert said == [f"removed a stale staging directory {dead_stage} (left by a finalize that no longer runs)"]
        assert _stages(tmp_path) == [live_stage.rsplit("/", 1)[1]]
    finally:
        live.kill()
        live.wait()
    assert [str(p) for p in remove_stale_stages(out)] == [live_stage]
    assert _stages(tmp_path) == []


def test_a_stage_from_an_older_hwnas_cannot_be_proven_dead_and_is_kept(tmp_path):
    old = tmp_path / ".dist.abc123.partial"
    old.mkdir()
    assert remove_stale_stages(tmp_path / "dist") == [] and old.is_dir()


def test_the_next_finalize_removes_the_stale_stage(tiny_run, tmp_path):
    out = tmp_path / "dist"
    dead, dead_stage = _holder(out)
    dead.kill()
    dead.wait()
    said = []
    finalize(tiny_run, out, processes=0, log=said.append)
    assert any(s.startswith("removed a stale staging directory") and dead_stage in s for s in said), said
    assert _stages(tmp_path) == [] and not (out / ".owner").exists() and (out / "report.json").is_file()
