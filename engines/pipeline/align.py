"""Face alignment as insightface's ``face_align.norm_crop`` does it: a 5-point
similarity transform (Umeyama 1991: least-squares rotation, uniform scale and translation,
reflection-corrected) from the detected landmarks onto the ArcFace template, then
``warpAffine`` with a black border.

The transforms of every face in a batch are estimated at once (one batched SVD); the warps
are one OpenCV call per face, each a few tens of microseconds at 112×112.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facebatch.core.errors import SpecError

TEMPLATE_BASE = 112  # the ArcFace template is given for 112×112 crops
PADDED_BASE = 128  # insightface's other crop family: the 112 template in a 128 frame, shifted 8 px right


def template_for(template_112: Sequence[Sequence[float]], size: tuple[int, int]) -> np.ndarray:
    """The 5 template points for a square crop of ``size``, by insightface's ``estimate_norm``
    rule: multiples of 112 scale the template; multiples of 128 scale it and shift x by 8·ratio."""
    height, width = size
    if height != width:
        raise SpecError(f"faces are aligned onto square crops; this embedder takes {height}x{width}")
    template = np.asarray(template_112, dtype=np.float64)
    if template.shape != (5, 2):
        raise SpecError(f"an alignment template has 5 (x, y) points, got shape {list(template.shape)}")
    if height % TEMPLATE_BASE == 0:
        return template * (height / TEMPLATE_BASE)
    if height % PADDED_BASE == 0:
        ratio = height / PADDED_BASE
        shifted = template * ratio
        shifted[:, 0] += 8.0 * ratio
        return shifted
    raise SpecError(f"no alignment for {height}x{width} crops: the ArcFace template scales to multiples of 112 or 128")


def similarity_transforms(landmarks: np.ndarray, template: np.ndarray) -> np.ndarray:
    """[n, 5, 2] points → [n, 2, 3] affine matrices mapping each face's points onto
    ``template`` [5, 2] in the least-squares sense (Umeyama), in float64.

    Per face: A = cov(template, points); A = U·S·Vᵀ; D = diag(1, ±1) so that det(U·D·Vᵀ) = +1
    (no reflection); R = U·D·Vᵀ; scale = trace(S·D) / var(points); t = mean_t − scale·R·mean_p.
    """
    src = np.asarray(landmarks, dtype=np.float64)
    if src.ndim != 3 or src.shape[1:] != template.shape:
        raise SpecError(f"landmarks must be [faces, {template.shape[0]}, 2], got {list(src.shape)}")
    if not len(src):
        return np.zeros((0, 2, 3), dtype=np.float64)
    points = src.shape[1]
    src_mean = src.mean(axis=1, keepdims=True)
    dst_mean = template.mean(axis=0)
    src_centred = src - src_mean
    dst_centred = template - dst_mean
    covariance = np.einsum("pi,npj->nij", dst_centred, src_centred) / points  # [n, 2, 2]
    u, s, vt = np.linalg.svd(covariance)
    d = np.ones((len(src), 2))
    d[np.linalg.det(covariance) < 0, 1] = -1.0
    rotation = np.einsum("nij,nj,njk->nik", u, d, vt)
    variance = src_centred.var(axis=1).sum(axis=1)  # [n]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(
            variance > 0, np.sum(s * d, axis=1) / variance, np.nan
        )  # all points in one place: no transform
    linear = rotation * scale[:, None, None]
    translation = dst_mean[None, :] - np.einsum("nij,nj->ni", linear, src_mean[:, 0, :])
    return np.concatenate([linear, translation[:, :, None]], axis=2)


def align_faces(
    image: np.ndarray,
    landmarks: np.ndarray,
    template: np.ndarray,
    size: tuple[int, int],
) -> np.ndarray:
    """One image's faces, [n, 5, 2] landmarks in its pixels → [n, H, W, 3] uint8 crops."""
    return warp_faces(image, similarity_transforms(landmarks, template), size)


def transform_scale(matrices: np.ndarray) -> np.ndarray:
    """[n, 2, 3] similarity transforms → [n] their scale (crop pixels per image pixel)."""
    return np.sqrt(np.abs(np.linalg.det(matrices[:, :, :2])))


def warp_faces(image: np.ndarray, matrices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[n, 2, 3] transforms from ``image``'s pixels → [n, H, W, 3] uint8 crops (``warpAffine``, black border)."""
    height, width = size
    crops = np.zeros((len(matrices), height, width, image.shape[2] if image.ndim == 3 else 1), dtype=image.dtype)
    for crop, matrix in zip(crops, matrices, strict=False):
        if np.isfinite(matrix).all():  # a degenerate face (all landmarks in one point) stays black
            cv2.warpAffine(image, matrix, (width, height), dst=crop, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return crops
