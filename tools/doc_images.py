"""Screenshots -> the pictures the project ships: the README's PNGs (docs/*.png) and the template browser's cards
(workflows/<name>.jpg). The browser e2e test (tests/e2e, MOFO_E2E_WRITE_DOCS=1) takes the screenshots and calls
these; by hand:

    python tools/doc_images.py doc tests/e2e/out/ran_mofo_text_to_rgbd_pointcloud.png \
        docs/workflow_text_to_rgbd.png --width 1600
    python tools/doc_images.py card tests/e2e/out/card_mofo_depth_to_image.png workflows/mofo_depth_to_image.jpg
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # mofo_core, when run as a script

CARD_SIDE = 384  # the template browser's card: /api/workflow_templates/<pack>/<name>.jpg


def _atomic_write(dst: Path, data: bytes) -> None:
    from mofo_core.atomic import atomic_path

    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        tmp.write_bytes(data)


def thumbnail(src: Path, dst: Path) -> Path:
    """The template browser's card picture: `src` scaled to a CARD_SIDE px square JPEG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.open(src).convert("RGB").resize((CARD_SIDE, CARD_SIDE), Image.LANCZOS).save(buf, "JPEG", quality=82,
                                                                                      optimize=True)
    _atomic_write(Path(dst), buf.getvalue())
    return Path(dst)


def doc_png(src: Path, dst: Path, width: int, max_kb: int = 290) -> Path:
    """A README screenshot: scaled down to `width`, palette-quantised until it is under `max_kb`."""
    from PIL import Image

    im = Image.open(src).convert("RGB")
    if im.width > width:
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    for colours in (256, 128, 64):
        buf = io.BytesIO()
        im.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, "PNG", optimize=True)
        if buf.tell() < max_kb * 1024:
            break
    else:
        raise ValueError(f"{src} is still {buf.tell() // 1024} KB at 64 colours (limit {max_kb} KB): "
                         "take a smaller screenshot or pass a smaller width")
    _atomic_write(Path(dst), buf.getvalue())
    return Path(dst)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("doc", help="a README screenshot (PNG under --max-kb)")
    d.add_argument("src", type=Path)
    d.add_argument("dst", type=Path)
    d.add_argument("--width", type=int, default=1600)
    d.add_argument("--max-kb", type=int, default=290)
    c = sub.add_parser("card", help="a template browser card (384 px square JPEG)")
    c.add_argument("src", type=Path)
    c.add_argument("dst", type=Path)
    a = p.parse_args(argv)
    if a.cmd == "doc":
        doc_png(a.src, a.dst, a.width, a.max_kb)
    else:
        thumbnail(a.src, a.dst)


if __name__ == "__main__":
    main()
