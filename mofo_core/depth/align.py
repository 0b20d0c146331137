"""Metric alignment of relative depth: a robust scale (and shift) fit to a reference, or a stated distance.

Modality Forcing's depth is relative: right up to an unknown scale. Two ways to give it units:

* `fit_depth`: fit `target ≈ s * source + t` (space "depth") or `1/target ≈ s / source + t` (space "disparity",
  for references that are affine in inverse depth, e.g. a disparity image) over the pixels valid in both maps and
  inside an optional mask, by iteratively reweighted least squares (IRLS). Weights: Huber (k = 1.345 sigma) or
  Tukey's biweight (c = 4.685 sigma), the 95 %-efficiency tuning constants of Holland & Welsch (1977), "Robust
  regression using iteratively reweighted least-squares", Commun. Statist. 6(9); sigma is the residuals' median
  absolute deviation x 1.4826 (the normal-consistent MAD). "l2" is plain least squares. The start is a
  median-based fit (median ratio for a scale; median / mean-absolute-deviation matching for scale + shift), so
  outliers do not steer the first weights.
* `scale_to_distance`: one scale so that a pixel (a small window around it) or a mask region has a stated depth,
  e.g. "the table at pixel (412, 300) is 0.75 m away"; "planar" is the depth map's own z, "ray" the Euclidean
  distance from the camera along the pixel's ray (the two agree at the image centre).

Both return the aligned depth and an `AlignReport` with the fit and its error. Invalid pixels (<= 0, non-finite)
stay invalid (0).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from ..camera import resolve_intrinsics
from ..config import DEFAULT_FOV_DEG

HUBER_K, TUKEY_C = 1.345, 4.685  # Holland & Welsch (1977): 95 % efficiency at the normal
MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): the MAD of a normal sample -> its standard deviation
LOSSES = ("huber", "tukey", "l2")
MIN_PIXELS = 10  # fewer valid pixel pairs than this cannot support a fit


@dataclass
class AlignReport:
    """What a fit did. scale / shift map the source to the target's units (space "disparity": in inverse depth).
    rmse / abs_rel compare the aligned depth with the target (depth units, and mean |a - t| / t) over the pixels
    used; the inlier_* ones over the pixels the robust weights kept (weight > 0.5; all pixels for l2)."""

    method: str
    scale: float
    shift: float = 0.0
    space: str = "depth"
    pixels: int = 0
    inlier_fraction: float = 1.0
    rmse: float = float("nan")
    inlier_rmse: float = float("nan")
    abs_rel: float = float("nan")
    iterations: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if self.method == "distance":
            return f"scale {self.scale:.6g} (stated distance; {self.pixels} px in the region)"
        fit = f"scale {self.scale:.6g}" + (f", shift {self.shift:.6g}" if self.shift else "")
        return (f"{fit} in {self.space} ({self.method}, {self.iterations} iterations, {self.pixels} px, "
                f"{100 * self.inlier_fraction:.1f} % inliers): RMSE {self.rmse:.4g} (inliers {self.inlier_rmse:.4g}), "
                f"AbsRel {self.abs_rel:.4g}")


def _valid(a: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(a) & (a > 0)


def _as_real(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _weights(r: np.ndarray, loss: str, floor: float) -> tuple[np.ndarray, float]:
    """IRLS weights of residuals r and the robust residual scale sigma (at least `floor`: an exact fit's
    rounding-level residuals are not outliers)."""
    sigma = max(MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r)))), floor)
    u = np.abs(r) / sigma
    if loss == "huber":
        return np.where(u <= HUBER_K, 1.0, HUBER_K / np.maximum(u, 1e-300)), sigma
    return np.where(u < TUKEY_C, (1.0 - (u / TUKEY_C) ** 2) ** 2, 0.0), sigma


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray, shift: bool) -> tuple[float, float]:
    """Weighted least squares y ~ s x (+ t)."""
    sw = w.sum()
    if not shift:
        den = float((w * x * x).sum())
        return (float((w * x * y).sum()) / den if den > 0 else float("nan")), 0.0
    mx, my = float((w * x).sum() / sw), float((w * y).sum() / sw)
    den = float((w * (x - mx) ** 2).sum())
    s = float((w * (x - mx) * (y - my)).sum()) / den if den > 0 else float("nan")
    return s, my - s * mx


def _start(x: np.ndarray, y: np.ndarray, shift: bool) -> tuple[float, float]:
    """A fit that outliers barely move: median ratio, or median / mean-absolute-deviation matching."""
    if not shift:
        return float(np.median(y / x)), 0.0
    mx, my = float(np.median(x)), float(np.median(y))
    dx, dy = float(np.mean(np.abs(x - mx))), float(np.mean(np.abs(y - my)))
    s = dy / dx if dx > 0 else float("nan")
    return s, my - s * mx


def fit_depth(
    source: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    shift: bool = False,
    space: Literal["depth", "disparity"] = "depth",
    loss: str = "huber",
    max_iter: int = 50,
    tol: float = 1e-9,
) -> tuple[np.ndarray, AlignReport]:
    """Fit the source depth to the target depth robustly; see the module docstring.

    Args:
        source: our relative depth, any shape (e.g. (H, W), or (B, H, W) for one fit over a whole batch).
        target: the reference depth of the same shape (metric or any unit); <= 0 / non-finite = no reference.
        mask: optional bool of the same shape, True where the fit may look (e.g. the ground, not the sky).
        shift: fit an offset too (scale + shift); otherwise scale only.
        space: "depth" (target ≈ s source + t) or "disparity" (1/target ≈ s / source + t).
        loss: "huber", "tukey" or "l2".
        max_iter: IRLS iterations at most.
        tol: stop when the relative change of the parameters falls below this.

    Returns:
        aligned: float32 of the source's shape, in the target's units; 0 where the source is invalid (and, in
            disparity space with a shift, where s / source + t <= 0, i.e. beyond infinity).
        report: the `AlignReport`.

    Raises:
        ValueError: mismatched shapes, a bad option, too few valid pixels, or a fit that is not a positive scale.
    """
    src, tgt = _as_real(source, "source"), _as_real(target, "target")
    if src.shape != tgt.shape:
        raise ValueError(f"source {src.shape} and target {tgt.shape} must have the same shape; resize the reference "
                         "to the depth's size first")
    if space not in ("depth", "disparity"):
        raise ValueError(f"space must be 'depth' or 'disparity', got {space!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    use = _valid(src) & _valid(tgt)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != src.shape:
            raise ValueError(f"mask must have the depth's shape {src.shape}, got {m.shape}")
        use &= m.astype(bool)
    n = int(use.sum())
    if n < MIN_PIXELS:
        where = " inside the mask" if mask is not None else ""
        raise ValueError(f"only {n} pixels have valid depth in both maps{where}; a fit needs at least {MIN_PIXELS} "
                         "(check the reference and the mask)")
    x, y = (src[use], tgt[use]) if space == "depth" else (1.0 / src[use], 1.0 / tgt[use])
    s, t = _start(x, y, shift)
    w = np.ones_like(x)
    floor = 1e-6 * float(np.median(np.abs(y)))  # residuals at a millionth of the data are exact
    it = 0
    if loss == "l2":
        s, t = _wls(x, y, w, shift)
    else:
        for it in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
            w, _ = _weights(y - (s * x + t), loss, floor)
            if w.sum() <= 0:
                break
            s2, t2 = _wls(x, y, w, shift)
            if not (math.isfinite(s2) and math.isfinite(t2)):
                break
            done = abs(s2 - s) + abs(t2 - t) <= tol * (abs(s) + abs(t) + 1e-30)
            s, t = s2, t2
            if done:
                break
        w, _ = _weights(y - (s * x + t), loss, floor)
    if not (math.isfinite(s) and s > 0 and math.isfinite(t)):
        raise ValueError(f"the fit gave scale {s:.4g}, shift {t:.4g}: the two maps do not agree on which pixels are "
                         "nearer (is the reference disparity? set space / the reference type), or the mask is wrong")
    aligned = apply_fit(src, s, t, space)
    a, g = aligned[use].astype(np.float64), tgt[use]
    inl = w > 0.5
    report = AlignReport(
        method=loss, scale=s, shift=t, space=space, pixels=n, inlier_fraction=float(inl.mean()),
        rmse=_rmse(a, g), inlier_rmse=_rmse(a[inl], g[inl]), abs_rel=float(np.mean(np.abs(a - g) / g)),
        iterations=it,
    )
    return aligned, report


def _rmse(a: np.ndarray, g: np.ndarray) -> float:
    ok = a > 0
    return float(np.sqrt(np.mean((a[ok] - g[ok]) ** 2))) if ok.any() else float("nan")


def apply_fit(source: np.ndarray, scale: float, shift: float = 0.0, space: str = "depth") -> np.ndarray:
    """The aligned depth of a fit (float32; 0 where the source is invalid or the result is not a positive depth)."""
    src = _as_real(source, "source")
    ok = _valid(src)
    out = np.zeros(src.shape, np.float64)
    if space == "depth":
        out[ok] = scale * src[ok] + shift
    else:
        disp = scale / src[ok] + shift
        with np.errstate(divide="ignore"):
            out[ok] = np.where(disp > 0, 1.0 / np.where(disp > 0, disp, 1.0), 0.0)
    out[~np.isfinite(out) | (out < 0)] = 0.0
    return out.astype(np.float32)


def scale_to_distance(
    depth: np.ndarray,
    distance: float,
    *,
    at: tuple[int, int] | None = None,
    region: np.ndarray | None = None,
    window: int = 5,
    measure: Literal["planar", "ray"] = "planar",
    fov_deg: float = DEFAULT_FOV_DEG,
) -> tuple[np.ndarray, AlignReport]:
    """Scale a depth map so that a pixel or a region is `distance` away (median over the region's valid pixels).

    Args:
        depth: (H, W) relative depth, or (B, H, W) for one scale over a batch (the region's median over all).
        distance: the stated distance, > 0, in the unit wanted (e.g. metres).
        at: (x, y) pixel (column, row) of the thing whose distance is known; a `window` x `window` square around
            it is used (edges clipped). Give exactly one of `at` and `region`.
        region: (H, W) bool mask of the thing whose distance is known.
        window: odd side of the square around `at` (1 = that pixel only).
        measure: "planar" (the depth map's z) or "ray" (Euclidean distance from the camera, needs fov_deg).
        fov_deg: horizontal field of view [deg] for measure="ray".

    Returns:
        (scaled depth float32, `AlignReport` with method "distance").

    Raises:
        ValueError: a bad distance, point or region, or no valid depth there.
    """
    d = _as_real(depth, "depth")
    if d.ndim not in (2, 3):
        raise ValueError(f"depth must be an (H, W) map or a (B, H, W) batch, got shape {d.shape}")
    h, w = d.shape[-2:]
    if not (math.isfinite(distance) and distance > 0):
        raise ValueError(f"distance must be a finite number > 0 (e.g. 0.75 for 75 cm), got {distance}")
    if (at is None) == (region is None):
        raise ValueError("give exactly one of at=(x, y) and region=mask for the stated distance")
    if measure not in ("planar", "ray"):
        raise ValueError(f"measure must be 'planar' or 'ray', got {measure!r}")
    if region is None:
        x, y = at
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"pixel (x={x}, y={y}) is outside the {w}x{h} depth map; x is the column, y the row")
        if int(window) != window or window < 1 or window % 2 == 0:
            raise ValueError(f"window must be an odd pixel count >= 1, got {window}")
        r = window // 2
        sel = np.zeros((h, w), bool)
        sel[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1] = True
        where = f"around pixel (x={x}, y={y})"
    else:
        sel = np.asarray(region)
        if sel.shape not in ((h, w), d.shape):
            raise ValueError(f"region must be (H, W) = {(h, w)} like the depth, got {sel.shape}")
        sel = sel.astype(bool)
        where = "inside the region mask"
    sel = np.broadcast_to(sel, d.shape) & _valid(d)
    if not sel.any():
        raise ValueError(f"no valid depth {where}; pick a pixel / region on a surface with depth")
    vals = d[sel]
    if measure == "ray":
        fx, fy, cx, cy = resolve_intrinsics(w, h, fov_deg, None)
        rows, cols = np.nonzero(sel)[-2:]
        vals = vals * np.sqrt(1.0 + ((cols + 0.5 - cx) / fx) ** 2 + ((rows + 0.5 - cy) / fy) ** 2)
    s = float(distance) / float(np.median(vals))
    return apply_fit(d, s), AlignReport(method="distance", scale=s, pixels=int(sel.sum()), iterations=0)
