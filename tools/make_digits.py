"""Re-create hwnas/data/digits.npz, the embedded default data set, from scikit-learn's bundled copy.

The file is shipped so hwnas needs neither scikit-learn nor a download; this script
records exactly how it was made. Source: UCI "Optical Recognition of Handwritten
Digits" (test part, 1,797 images of 8x8 pixels with values 0..16, 10 classes),
E. Alpaydin and C. Kaynak, 1998, CC BY 4.0.

    pip install scikit-learn && python tools/make_digits.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def main() -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # N x 8 x 8 x 1
    y = d.target.astype(np.int64)
    out = Path(__file__).resolve().parents[1] / "hwnas" / "data" / "digits.npz"
    np.savez_compressed(out, x=x, y=y, classes=np.array([str(i) for i in range(10)]))
    print(f"wrote {out}: x {x.shape} {x.dtype}, y {y.shape}, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
