#!/usr/bin/env bash
# Builds .gpu/kit.tar.xz: what bench/comfy_server_gpu.py needs on the device machine (no registry there): the
# wheels ComfyUI 0.29 needs beyond that image's packages, unpacked into site/, plus a copy of a ComfyUI checkout
# without its .git (comfy.tar). ~56 MB (the device's working-tree limit is 64 MiB). On the device:
#   mkdir -p /tmp/kit && tar -xJf .gpu/kit.tar.xz -C /tmp/kit && tar -xf /tmp/kit/comfy.tar -C /tmp \
#     && export PYTHONPATH=/tmp/kit/site     # then --comfy /tmp/ComfyUI (carry=[".gpu"])
# Usage: tools/device_kit.sh /path/to/ComfyUI    (`.gpu/` is git-ignored through .git/info/exclude)
set -euo pipefail
comfy="$(cd "${1:?usage: tools/device_kit.sh COMFYUI_DIR}" && pwd)"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
plat=(--python-version 3.12 --implementation cp --only-binary=:all: --no-deps)
for n in 17 24 27 28 31 34 35; do plat+=(--platform "manylinux_2_${n}_x86_64"); done
plat+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
# ComfyUI 0.29's requirements.txt minus what the device image has (its KINDS.md package list), their own
# dependencies, and plyfile (the bench reads the PLY back)
for pkg in torchsde==0.2.6 trampoline alembic Mako "SQLAlchemy>=2" greenlet "av>=16" comfy-kitchen==0.2.24 \
    comfy-aimdo==0.4.10 simpleeval blake3 "pydantic~=2.0" pydantic-core annotated-types typing-inspection \
    "pydantic-settings~=2.0" python-dotenv plyfile OpenEXR; do
  python3 -m pip download -q "${plat[@]}" -d "$work/whl" "$pkg"
done
mkdir -p "$work/kit/site"
for w in "$work"/whl/*.whl; do unzip -q -o "$w" -d "$work/kit/site"; done
tar --exclude=.git --exclude=__pycache__ -C "$(dirname "$comfy")" -cf "$work/kit/comfy.tar" "$(basename "$comfy")"
mkdir -p "$root/.gpu"
grep -qx "/.gpu/" "$root/.git/info/exclude" 2>/dev/null || echo "/.gpu/" >> "$root/.git/info/exclude"
tar -C "$work/kit" -cf - site comfy.tar | xz -9 -T0 > "$root/.gpu/kit.tar.xz"
rm -rf "$work"
ls -l "$root/.gpu/kit.tar.xz"
