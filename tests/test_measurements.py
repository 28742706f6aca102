"""A LUT from timings measured elsewhere (hwnas.measuring.measurements): ``--measurements`` and ``--suggest``."""
import json

import pytest

from hwnas.app.cli import main
from hwnas.latency.lut import LUT
from hwnas.latency.predict import latency_predictor
from hwnas.measuring.measurements import MeasurementsError, read_measurements


def _write(tmp_path, rows, header="arch,ms"):
    f = tmp_path / "m.csv"
    f.write_text(header + "\n" + "\n".join(rows) + "\n")
    return f


def test_suggest_then_measurements_make_a_lut_that_predicts_the_given_timings(demo_lut_path, demo, tmp_path, capsys):
    """The user's round trip: the networks to time, timed elsewhere (here: the donor's own predictions x 3, as
    a device three times slower whose timings the user pasted in), and the LUT fitted from them."""
    listing = tmp_path / "list.csv"
    assert main(["profile", "--transfer-from", str(demo_lut_path), "--suggest", "8", "--resolutions", "24",
                 "--out", str(listing)]) == 0
    lines = listing.read_text().splitlines()
    assert lines[0] == "arch,ms" and len(lines) == 9 and all(line.endswith(",") or line.endswith('",') for line in lines[1:])
    donor = latency_predictor(LUT.load(demo_lut_path))
    import csv
    import io

    archs = [demo.arch_from_dict(json.loads(r["arch"])) for r in csv.DictReader(io.StringIO(listing.read_text()))]
    timed = tmp_path / "timed.csv"
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["arch", "ms"])
    for a in archs:
        w.writerow([a.to_json(), 3 * donor.predict(a)])
    timed.write_text(buf.getvalue())
    capsys.readouterr()
    out = tmp_path / "phone.json"
    assert main(["profile", "--transfer-from", str(demo_lut_path), "--measurements", str(timed), "--out",
                 str(out)]) == 0
    assert "8 networks timed elsewhere" in capsys.readouterr().out
    lut = LUT.load(out)
    assert lut.transfer["measurements"]["networks"] == 8 and len(lut.transfer["measurements"]["sha256"]) == 16
    assert lut.fingerprint["device"] == "measured elsewhere" and lut.reference is None
    pred = latency_predictor(lut)
    for a in archs:
        assert pred.predict(a) == pytest.approx(3 * donor.predict(a), rel=0.05)
    # an existing LUT is not replaced without --force
    assert main(["profile", "--transfer-from", str(demo_lut_path), "--measurements", str(timed), "--out",
                 str(out)]) == 2


@pytest.mark.parametrize("rows, header, message", [
    (["{\"resolution\": 24}"], "arch,ms", "row 2"),
    (["x.json,1.0"], "arch,ms", "row 2: arch file 'x.json' does not exist"),
    (["{}"], "net,latency", "header must name the columns 'arch' and 'ms'"),
])
def test_bad_rows_are_refused_with_the_row(demo, tmp_path, rows, header, message):
    with pytest.raises(MeasurementsError, match=message):
        read_measurements(_write(tmp_path, rows, header), demo)


def test_repeated_rows_count_once_at_their_median(demo, tmp_path):
    a, b, c = (demo.sample(i).to_json() for i in range(3))
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["arch", "ms", "note"])
    for arch, ms in ((a, 1.0), (a, 3.0), (a, 2.0), (b, 0.5), (c, 0.7)):
        w.writerow([arch, ms, "pixel"])
    f = tmp_path / "m.csv"
    f.write_text(buf.getvalue())
    archs, ms, digest = read_measurements(f, demo)
    assert len(archs) == 3 and list(ms) == [2.0, 0.5, 0.7] and len(digest) == 16
    buf = io.StringIO()
    csv.writer(buf).writerows([["arch", "ms"], [a, "-1"]])
    f.write_text(buf.getvalue())
    with pytest.raises(MeasurementsError, match="ms -1 must be a finite latency above 0"):
        read_measurements(f, demo)
