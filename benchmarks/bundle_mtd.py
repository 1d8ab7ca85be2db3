"""Pack the Magnetic Tile Defects tree at a fixed resolution for a machine that cannot hold the original.

``python benchmarks/bundle_mtd.py SRC_ROOT DST_ROOT [--size 256] [--quality 95]`` writes ``DST_ROOT/mtd`` in the same
``MT_<Class>/Imgs/<name>.jpg`` (+ ``.png`` mask) layout, every image resized to ``size`` x ``size`` by anogen's own
preprocessing (bilinear with antialiasing, as :mod:`anogen.data.transforms` resizes at fit and scoring) and saved
as JPEG, masks resized with nearest neighbour and saved as PNG, plus a copy of the splits file as
``DST_ROOT/mtd_splits.json``. A model trained at ``image_size=size`` on the bundle sees the images the original tree
would give it, up to one JPEG re-encoding (quality ``--quality``). Used by ``benchmarks/run_gpu.sh``: the device
machine's working tree is limited to 64 MiB and the original tree is 57 MB of JPEGs at up to 632 x 403 px.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def bundle(src: Path, dst: Path, size: int, quality: int) -> int:
    from anogen.data.io import read_image
    from anogen.data.mtd import load_mtd
    from anogen.data.transforms import Preprocess

    ds = load_mtd(src / "mtd")
    pre = Preprocess(image_size=size, channels=1, normalize="unit")
    out = dst / "mtd"
    for i, name in enumerate(ds.names):
        x = pre([ds.x[i]])[0, 0].numpy()  # (size, size) in [0, 1]
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(x * 255).astype(np.uint8)).save(target, quality=quality)
        if ds.masks[i] is not None:
            m = Image.fromarray(read_image(ds.masks[i]).squeeze().astype(np.uint8))
            m.resize((size, size), Image.NEAREST).save(target.with_suffix(".png"))
    shutil.copy(src / "mtd_splits.json", dst / "mtd_splits.json")
    return len(ds.names)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path, help="data root holding mtd/ and mtd_splits.json")
    p.add_argument("dst", type=Path, help="output data root")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--quality", type=int, default=95)
    a = p.parse_args()
    print(f"{bundle(a.src, a.dst, a.size, a.quality)} images -> {a.dst}")


if __name__ == "__main__":
    main()
