"""Re-create hwnas/data/fashion-mnist-small.npz, the embedded ``fashion-small`` data set, from Fashion-MNIST.

A harder task than the 8x8 digits that still ships in the package (no download):
a stratified, seeded subset of Fashion-MNIST (Xiao, Rasul and Vollgraf, Zalando
Research, 2017; MIT licence; https://github.com/zalandoresearch/fashion-mnist),
28x28 grey images of 10 clothing classes: ``--train`` images per class from the
official training files and ``--test`` per class from the official t10k files.

Keys: ``x``/``y`` (training part, uint8 N x 28 x 28 x 1 / int64), ``x_test``/``y_test``
(official test images: hwnas keeps them as the test split), ``classes``, and
provenance: ``train_index``/``test_index`` (positions in the original files),
``source``, ``license`` (the full MIT notice), ``seed``.

    apt-get install dataset-fashion-mnist && python tools/make_fashion_subset.py
    python tools/make_fashion_subset.py --src ~/data/fashion-mnist   # the four IDX files, .gz or not
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hwnas.evaluate.data import EMBEDDED, FASHION_CLASSES, IDX_SOURCES, limit_per_class, read_idx_dir

SOURCE = ("Fashion-MNIST, Xiao, Rasul and Vollgraf (Zalando Research), 2017, "
          "https://github.com/zalandoresearch/fashion-mnist; stratified seeded subset made by "
          "tools/make_fashion_subset.py")
LICENSE = """MIT License (Expat). Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and
to permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of
the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO
THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF
CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS
IN THE SOFTWARE.
"""  # the full notice travels inside the .npz: MIT asks for it with every copy


def make(src: Path, out: Path, per_class_train: int, per_class_test: int, seed: int) -> None:
    """Draw the subset (each part with its own seeded generator, so --test does not change the train draw)."""
    train, test = read_idx_dir(src, FASHION_CLASSES)
    tr = limit_per_class(train.y, per_class_train, np.random.default_rng([seed, 0]))
    te = limit_per_class(test.y, per_class_test, np.random.default_rng([seed, 1]))
    np.savez_compressed(out, x=train.x[tr], y=train.y[tr].astype(np.int64),
                        x_test=test.x[te], y_test=test.y[te].astype(np.int64),
                        classes=np.array(FASHION_CLASSES), train_index=tr.astype(np.uint16),
                        test_index=te.astype(np.uint16), source=np.array(SOURCE), license=np.array(LICENSE),
                        seed=np.array(seed))
    print(f"wrote {out}: {len(tr)} train + {len(te)} test images of {train.x.shape[1:]}, "
          f"{out.stat().st_size} bytes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=IDX_SOURCES["fashion-mnist"][0],
                    help="directory with the four Fashion-MNIST IDX files [Debian's]")
    ap.add_argument("--train", type=int, default=600, help="images per class from the training files [600]")
    ap.add_argument("--test", type=int, default=200, help="images per class from the t10k files [200]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=EMBEDDED["fashion-small"])
    args = ap.parse_args()
    make(args.src, args.out, args.train, args.test, args.seed)


if __name__ == "__main__":
    main()
