#!/usr/bin/env python3
"""How well each predictor-guided surrogate ranks unseen archs after N evaluations.

    python tools/bench_surrogates.py --lut luts/amd-epyc-2c_ort-cpu_mbv3.json

The accuracy function is bench_search.py's (an MLP fitted to SynFlow scores of 120 archs, the same seed),
so the numbers describe the model behind that benchmark's predictor-guided row. For each N: fit on N
random archs, Kendall tau of the predicted mean against the truth on 2,000 held-out archs, and seconds per
fit.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.evaluate.predictor import AccuracyPredictor  # noqa: E402
from hwnas.evaluate.proxies import synflow  # noqa: E402
from hwnas.latency.lut import LUT  # noqa: E402
from hwnas.core.metrics import kendall_tau  # noqa: E402
from hwnas.search.surrogates import BayesianLinear, MLPEnsemble  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lut", type=Path, default=Path("luts/amd-epyc-2c_ort-cpu_mbv3.json"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 150, 250])
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    space = LUT.load(args.lut).search_space()
    rng = random.Random(123)  # bench_search.py's accuracy function
    train = [space.sample(rng) for _ in range(120)]
    truth = AccuracyPredictor(space, seed=0)
    truth.fit(train, [synflow(a, seed=0) for a in train], epochs=400, seed=0)
    rng = random.Random(args.seed)
    test = [space.sample(rng) for _ in range(2000)]
    Xt, yt = space.encode_many(test).astype(float), truth.predict(test)
    models = {"linear (default)": lambda X, Y: BayesianLinear(X, Y), "mlp (5 members)": lambda X, Y: MLPEnsemble(X, Y)}
    print(f"{'surrogate':18s} " + " ".join(f"{'tau@' + str(n):>9s}" for n in args.sizes) + "  s per fit")
    data = {}
    for n in args.sizes:
        archs = [space.sample(rng) for _ in range(n)]
        data[n] = (space.encode_many(archs).astype(float), truth.predict(archs)[:, None])
    for name, make in models.items():
        taus, secs = [], []
        for n in args.sizes:
            t = time.perf_counter()
            model = make(*data[n])
            secs.append(time.perf_counter() - t)
            taus.append(kendall_tau(model.mean_std(Xt)[0][:, 0], yt))
        print(f"{name:18s} " + " ".join(f"{t:9.3f}" for t in taus) + f"  {np.median(secs):9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
