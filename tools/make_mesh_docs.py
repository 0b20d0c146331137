"""The template browser's thumbnail of the image -> mesh workflow (workflows/mofo_image_to_mesh.jpg).

    python tools/make_mesh_docs.py

Builds the mesh the workflow builds (mofo_core.geometry.mesh.depth_to_mesh, edge test 0.04, 65° camera) from the shipped
example room's exact depth (tools/example_scene.py; no model involved), scaled so its centre is 2 m away as the
workflow's Mofo Align Depth does, and draws its vertices from an orbiting camera (mofo_core.geometry.render), beside the
room's normal map (mofo_core.geometry.normals, ControlNet colours).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import example_scene  # noqa: E402

from mofo_core.depth.align import scale_to_distance  # noqa: E402
from mofo_core.geometry.mesh import depth_to_mesh  # noqa: E402
from mofo_core.geometry.normals import depth_to_normals, normals_to_image  # noqa: E402
from mofo_core.geometry.render import render_points  # noqa: E402

SIZE = 256  # the room's resolution for the picture
THUMB = 384  # the template browser's card (other thumbnails: 384 x 384)


def main() -> None:
    z, ids, _ = example_scene.room(SIZE)
    rgba = np.asarray(Image.open(ROOT / "assets" / "mofo_edit_example.png").convert("RGB").resize((SIZE, SIZE)))
    metric, _ = scale_to_distance(z, 2.0, at=(SIZE // 2, SIZE // 2))
    mesh = depth_to_mesh(metric, rgba, fov_deg=65.0)
    view = render_points(mesh.vertices, mesh.colors, size=(THUMB, THUMB), yaw_deg=35.0, pitch_deg=12.0, splat=2)
    normals = normals_to_image(depth_to_normals(metric, fov_deg=65.0))
    inset = Image.fromarray((normals * 255).round().astype(np.uint8)).resize((THUMB // 3, THUMB // 3))
    pic = Image.fromarray(view)
    pic.paste(inset, (THUMB - inset.width - 6, THUMB - inset.height - 6))
    out = ROOT / "workflows" / "mofo_image_to_mesh.jpg"
    pic.save(out, quality=85)
    print("wrote", out.relative_to(ROOT), f"({mesh.face_count} faces)")


if __name__ == "__main__":
    main()
