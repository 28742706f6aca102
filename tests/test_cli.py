import json

from hwnas.app.cli import main

from conftest import cli_here, run_cli


def test_help_works_for_every_command(capsys):
    assert main([]) == 0
    assert "profile" in capsys.readouterr().out
    r = run_cli("--help")
    assert r.returncode == 0 and "examples:" in r.stdout
    for cmd in ("profile", "predict", "measure", "sample"):
        r = run_cli(cmd, "--help")
        assert r.returncode == 0 and "examples:" in r.stdout, cmd


def test_profile_list(capsys):
    assert main(["profile", "--list"]) == 0
    out = capsys.readouterr().out
    assert "ort-cpu      available" in out and "torch-cuda" in out


def test_sample_then_predict_then_breakdown(demo_lut_path, tmp_path, capsys):
    arch_file = tmp_path / "arch.json"
    assert main(["sample", "--space", "demo", "--seed", "3", "--out", str(arch_file)]) == 0
    data = json.loads(arch_file.read_text())
    data["resolution"] = 24
    arch_file.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["predict", "--lut", str(demo_lut_path), "--arch", str(arch_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profiler"] == "torch-cpu" and out["predictions"][0]["predicted_ms"] > 0
    assert main(["predict", "--lut", str(demo_lut_path), "--arch", str(arch_file), "--breakdown"]) == 0
    assert "mbconv:r12" in capsys.readouterr().out


def test_measure_arch_with_lut_reports_prediction_error(demo_lut_path, tmp_path, capsys):
    arch_file = tmp_path / "arch.json"
    main(["sample", "--space", "demo", "--seed", "1", "--out", str(arch_file)])
    data = json.loads(arch_file.read_text())
    data["resolution"] = 24
    arch_file.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["measure", "--lut", str(demo_lut_path), "--arch", str(arch_file), "--quick", "--pin-cpu", "none",
                 "--processes", "0", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["results"][0]
    assert row["profiler"] == "torch-cpu" and row["median_ms"] > 0 and "error_pct" in row


def test_measure_an_onnx_file(tmp_path, capsys):
    from hwnas.spaces.blocks import build_model
    from hwnas.spaces.base import get_space
    from hwnas.profilers._ort import export_onnx

    arch = get_space("demo").sample(0)
    model = tmp_path / "m.onnx"
    model.write_bytes(export_onnx(build_model(arch), (1, 3, arch.resolution, arch.resolution)))
    for prof in ("ort-cpu", "ort-mobile"):
        assert main(["measure", "--profiler", prof, str(model), "--quick", "--pin-cpu", "none"]) == 0
        assert "measured median" in capsys.readouterr().out
    assert main(["measure", "--profiler", "torch-cpu", str(model), "--pin-cpu", "none"]) == 2
    assert "use ort-cpu or ort-mobile" in capsys.readouterr().err


def test_errors_are_one_line_without_traceback(tmp_path):
    bad_arch = tmp_path / "arch.json"
    bad_arch.write_text('{"resolution": 225, "kernels": [], "expands": []}')
    r = cli_here("predict", "--lut", str(tmp_path / "missing.json"), "--arch", str(bad_arch))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "does not exist; build it with hwnas profile" in r.stderr
    r = cli_here("measure", "--profiler", "torch-cpu", "--space", "mbv3", "--arch", str(bad_arch))
    assert r.returncode == 2 and "resolution = 225 is not allowed; choose from [160" in r.stderr
    r = cli_here("profile", "--profiler", "torch-cuda", "--space", "demo", "--out", str(tmp_path / "x.json"))
    import torch

    if not torch.cuda.is_available():
        assert r.returncode == 3 and "unavailable" in r.stderr and "Traceback" not in r.stderr
    r = cli_here("profile", "--profiler", "nope", "--out", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "unknown profiler 'nope'" in r.stderr
    r = run_cli("--debug", "predict", "--lut", str(tmp_path / "missing.json"), "--sample", "1")
    assert "Traceback" in r.stderr


def test_measuring_against_a_foreign_lut_warns_with_the_fields(demo_lut_path, tmp_path):
    import json as _json

    data = _json.loads(demo_lut_path.read_text())
    data["fingerprint"]["cpu_model"] = "Snapdragon 8 Gen 3"
    foreign = tmp_path / "phone.json"
    foreign.write_text(_json.dumps(data))
    r = run_cli("measure", "--lut", str(foreign), "--sample", "1", "--resolution", "24", "--quick", "--pin-cpu", "none")
    assert r.returncode == 0, r.stderr
    assert "WARNING" in r.stderr and "cpu_model: LUT 'Snapdragon 8 Gen 3'" in r.stderr
    # predicting with it is fine and silent
    r = run_cli("predict", "--lut", str(foreign), "--sample", "1", "--resolution", "24")
    assert r.returncode == 0 and "WARNING" not in r.stderr


def test_help_lists_every_command_with_examples():
    r = run_cli("--help")  # the console entry point itself, once
    for cmd in ("profile", "predict", "measure", "search", "supernet", "finalize", "report", "demo"):
        assert cmd in r.stdout, cmd
        sub = cli_here(cmd, "--help")
        assert sub.returncode == 0 and "examples:" in sub.stdout, cmd


def test_supernet_refuses_to_overwrite(tmp_path, tiny_supernet, tiny_data):
    out = tmp_path / "sn.pt"
    out.write_bytes(tiny_supernet[0].read_bytes())
    r = run_cli("supernet", "--space", "demo", "--data", tiny_data, "--out", str(out), "--epochs", "1")
    assert r.returncode == 2 and "already exists; add --resume" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("supernet", "--space", "demo", "--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "x.pt"))
    assert r.returncode == 2 and "not found" in r.stderr


def test_finalize_cli_errors_and_report(tiny_run, tmp_path):
    r = cli_here("finalize", str(tiny_run), "--pick", "000000000000", "--out", str(tmp_path / "d"))
    assert r.returncode == 2 and "is not in run" in r.stderr and "Traceback" not in r.stderr
    r = cli_here("finalize", str(tmp_path), "--out", str(tmp_path / "d"))
    assert r.returncode == 2 and "not a search run" in r.stderr
    r = run_cli("finalize", str(tiny_run), "--out", str(tmp_path / "d"), "--processes", "0")
    assert r.returncode in (0, 1, 5), r.stderr  # 5: UNCERTAIN, measured twice and too noisy to tell
    assert r.stdout.splitlines()[-2].startswith({0: "PASS", 1: "FAIL", 5: "UNCERTAIN"}[r.returncode] + ": measured median")
    assert (tmp_path / "d" / "model.onnx").is_file()
    r = cli_here("report", str(tmp_path / "d"))
    assert r.returncode == 0 and "report.md" in r.stdout


def test_predictor_is_fitted_on_the_supernet_then_searched_with(tmp_path, tiny_supernet, demo_lut_path):
    out = tmp_path / "pred.pt"
    r = run_cli("predictor", "--checkpoint", str(tiny_supernet[0]), "--archs", "12", "--epochs", "20",
                "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.is_file() and "held out: Kendall tau" in r.stdout
    r = cli_here("predictor", "--checkpoint", str(tiny_supernet[0]), "--out", str(out))
    assert r.returncode == 2 and "already exists" in r.stderr
    r = run_cli("search", "--lut", str(demo_lut_path), "--evaluator", "predictor", "--evaluator-option",
                f"path={out}", "--population", "4", "--generations", "1", "--out", str(tmp_path / "run"))
    assert r.returncode in (0, 1), r.stderr
    assert "search done" in r.stdout


def test_search_names_a_proxy_objective_by_its_evaluator(demo_lut_path, tmp_path):
    """A synflow score is not an accuracy: the summary says which it is."""
    r = run_cli("search", "--lut", str(demo_lut_path), "--evaluator", "proxy:synflow", "--population", "4",
                "--generations", "1", "--out", str(tmp_path / "run"))
    assert r.returncode in (0, 1), r.stderr[-2000:]
    if "best under the constraints" in r.stdout:
        assert "synflow score" in r.stdout and " accuracy " not in r.stdout


def test_an_internal_error_has_its_own_exit_code_and_keeps_the_traceback(tmp_path):
    """Exit 4, one line naming the file with the traceback: never 1 (FAIL) or 2 (bad input)."""
    import os
    import subprocess
    import sys

    from hwnas.app import cli

    # a real run of the CLI in which the `sample` command has a bug (1 / 0)
    code = ("import sys; from hwnas.app import cli\n"
            "orig = cli.build_parser\n"
            "def bp():\n    p = orig(); sub = p._subparsers._group_actions[0].choices['sample']\n"
            "    sub.set_defaults(func=lambda a: 1 / 0); return p\n"
            "cli.build_parser = bp\nsys.exit(cli.main(['sample', '--space', 'demo']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert r.returncode == cli.EXIT_INTERNAL == 4
    line = r.stderr.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("hwnas sample: internal error: ZeroDivisionError")
    path = line[0].split("traceback written to ")[1].split(";")[0]
    assert "ZeroDivisionError" in open(path).read() and "Traceback" in open(path).read()
    os.unlink(path)


def test_a_closed_pipe_ends_the_command_quietly():
    """`hwnas plugins | head -1`: the reader goes away; hwnas stops without a word (was: internal error, exit 4)."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    for args in (["plugins"], ["sample", "--space", "demo", "--n", "3"]):
        r, w = os.pipe()
        os.close(r)  # the reader is gone before the first line: every write is EPIPE
        try:
            p = subprocess.run([sys.executable, "-m", "hwnas", *args], stdout=w, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT, timeout=120)
        finally:
            os.close(w)
        assert p.returncode == 141 and p.stderr == "", (args, p.returncode, p.stderr)


def test_an_empty_device_is_refused_not_measured_here(tmp_path):
    """--device "$BOARD" with BOARD unset measured on this host and said nothing."""
    token = tmp_path / "token"
    token.write_text("0123456789abcdef-test-token")
    r = cli_here("measure", "--profiler", "ort-cpu", "--space", "demo", "--sample", "1", "--device", "",
                 "--token-file", str(token))
    assert r.returncode == 2 and "--device is empty" in r.stderr, r.stderr


def test_a_token_file_other_users_can_read_is_refused_on_the_host_too(tmp_path):
    """The host read a world-readable token without a word (only the agent refused one); whoever reads it can
    drive the device. Refused before any connection, in one line, with the fix."""
    token = tmp_path / "token"
    token.write_text("0123456789abcdef-test-token")
    token.chmod(0o644)
    r = cli_here("measure", "--profiler", "ort-cpu", "--space", "demo", "--sample", "1", "--device",
                 "tcp://127.0.0.1:9", "--token-file", str(token))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "open to other users (mode 644); make it private: chmod 600" in r.stderr, r.stderr


def test_a_closed_stdout_and_a_deleted_current_directory_are_said_in_one_line(tmp_path):
    """Issue 47: `hwnas sample ... >&-` exited 1 with AttributeError 'NoneType' object has no attribute 'flush';
    run from a deleted directory, torch died inside oneMKL ("Cannot load .../libtorch_cpu.so"), with no word on
    the directory. Real processes: stdout closed (fd 1 not open), and a current directory removed under them."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "hwnas", "sample", "--space", "demo"]
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, timeout=300,
                       pass_fds=(), preexec_fn=lambda: os.close(1))
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr
    assert err[0].startswith("hwnas sample: error: standard output is closed") and "> /dev/null" in err[0], err
    gone = tmp_path / "gone"
    gone.mkdir()
    r = subprocess.run(f"cd {gone} && rmdir {gone} && exec {sys.executable} -m hwnas sample --space demo",
                       shell=True, capture_output=True, text=True, env=env, timeout=300)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr
    assert err[0].startswith("hwnas sample: error: the current directory no longer exists") and "cd to" in err[0]


def test_every_flag_of_every_command_has_help():
    """`hwnas CMD --help` explains every flag: a flag without help is one the user must guess at."""
    import argparse

    from hwnas.app.cli import build_parser

    def lacking(parser, where):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from lacking(sub, name)
            elif not isinstance(action, argparse._HelpAction) and not (action.help or "").strip():
                yield f"{where} {'/'.join(action.option_strings) or action.dest}"

    assert list(lacking(build_parser(), "hwnas")) == []


def test_deprecated_spellings_warn_and_name_the_new_flag():
    """One meaning per flag: --device names an agent; the torch device is --compute; --wall-time and --device-time
    say whose time. The old spellings work for one release, with a warning line."""
    from hwnas.app.cli import build_parser

    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        args = build_parser().parse_args(["supernet", "--data", "digits", "--device", "cpu", "--out", "sn.pt"])
        assert args.compute == "cpu"
        args = build_parser().parse_args(["search", "--lut", "L", "--out", "o", "--time-budget", "1h30m"])
        assert args.wall_time == 5400
        args = build_parser().parse_args(["profile", "--transfer-from", "L", "--time-budget", "90"])
        assert args.device_time == 90
    said = err.getvalue().splitlines()
    assert said == ["hwnas supernet: warning: --device is deprecated, use --compute (the old spelling is accepted "
                    "until the next release)",
                    "hwnas search: warning: --time-budget is deprecated, use --wall-time (the old spelling is "
                    "accepted until the next release)",
                    "hwnas profile: warning: --time-budget is deprecated, use --device-time (the old spelling is "
                    "accepted until the next release)"]
    assert build_parser().parse_args(["supernet", "--data", "d", "--out", "o"]).compute == "auto"


def test_plugins_options_lists_an_evaluators_strategys_and_profilers_options():
    r = cli_here("plugins", "--options", "supernet")
    assert r.returncode == 0 and "--evaluator-option KEY=VALUE" in r.stdout, r.stdout
    assert "  checkpoint  (required)" in r.stdout and "  batch_size  default 64" in r.stdout
    r = cli_here("plugins", "--options", "nsga2")
    assert r.returncode == 0 and "crossover_prob  default 0.9" in r.stdout and "population" not in r.stdout
    r = cli_here("plugins", "--options", "ort-cpu", "--kind", "profiler", "--json")
    got = json.loads(r.stdout)
    assert got[0]["kind"] == "profiler" and got[0]["options"]["threads"] == 1 and got[0]["required"] == []
    r = cli_here("plugins", "--options", "nope")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no plugin named 'nope'" in r.stderr
    assert "nsga2" in r.stderr
