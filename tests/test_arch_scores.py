"""``hwnas score``: an accuracy evaluator over a list of archs, as a user runs it."""
import json

from hwnas.app.cli import main

CELLS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
         "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|"]


def test_score_nb201_strings_data_free_with_the_default(tmp_path, capsys):
    archs, out = tmp_path / "nb201.txt", tmp_path / "scores.json"
    archs.write_text("\n".join(CELLS) + "\n")
    assert main(["score", "--space", "cell", "--archs", str(archs), "--data", "none", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "proxy:meco (the default: the best measured evaluator" in printed
    result = json.loads(out.read_text())
    assert result["evaluator"] == "proxy:meco" and [r["summary"] for r in result["results"]] == [
        "ops conv3x3|conv3x3|conv3x3|conv3x3|conv3x3|conv3x3", "ops avgpool3x3|skip|none|none|none|skip"]
    # all-conv3x3 cells keep more decorrelated channels than a cell of pools and skips
    assert result["results"][0]["score"] > result["results"][1]["score"]


def test_score_a_sampled_list_with_a_named_evaluator_and_data(tmp_path, tiny_data, capsys):
    archs, out = tmp_path / "archs.jsonl", tmp_path / "s.json"
    assert main(["sample", "--space", "demo", "--n", "3", "--seed", "1", "--out", str(archs)]) == 0
    assert main(["score", "--space", "demo", "--archs", str(archs), "--evaluator", "proxy:snip",
                 "--data", tiny_data, "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["evaluator"] == "proxy:snip" and result["config"]["data"] == tiny_data
    assert len(result["results"]) == 3 and len({r["arch_id"] for r in result["results"]}) == 3
    assert capsys.readouterr().out.strip().endswith(f"scores written to {out}")


def test_an_evaluator_that_needs_data_is_never_given_a_silent_default(tmp_path, capsys):
    archs = tmp_path / "nb201.txt"
    archs.write_text(CELLS[0] + "\n")
    assert main(["score", "--space", "cell", "--archs", str(archs), "--evaluator", "proxy:naswot"]) == 2
    err = capsys.readouterr().err
    assert "proxy:naswot scores from the data: give --data NAME" in err and "digits" not in err
    assert main(["score", "--space", "cell", "--archs", str(archs), "--evaluator", "proxy:naswot",
                 "--data", "none"]) == 2


def test_predict_takes_a_list_file(demo_lut_path, tmp_path, capsys):
    archs = tmp_path / "archs.json"
    assert main(["sample", "--space", "demo", "--n", "2", "--resolution", "24", "--out", str(tmp_path / "a.jsonl")]) == 0
    archs.write_text(json.dumps([json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]))
    capsys.readouterr()
    assert main(["predict", "--lut", str(demo_lut_path), "--archs", str(archs), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["predictions"]) == 2
