"""The paper's losses, eq. (1)-(12) of Kweon & Yoon (NeurIPS 2022), one function per equation.

Tensors only; nothing here knows about files or data loading. Shapes use
B = point clouds in the batch, N = points per cloud, V = views (images) in the batch,
P = the padded number of projected points per view (N_v <= P, with a boolean ``mask``),
C = classes (20), D = feature channels, h x w = the image network's feature map.

Choices the paper leaves open (each documented in the README, config keys in brackets):

- Scores. The CAMs ``A`` are logits; class *scores* are ``sigmoid(A)`` (eq. 5's argmax is the same either way),
  so the confidences of eq. 6 and eq. 10 are probabilities in [0, 1]
  [``joint.confidence_score``: ``sigmoid`` | ``logit``: the maximum logit clamped at 0, the paper's words "using
  maximum logit as a confidence score"; it scales eq. 7 and eq. 11 by the logits' size, about 5 and 10 times here, and
  collapses the joint model's 2D (docs/2d-to-3d-transfer.md, section 7)].
- ``l_bce`` of eq. 2 and eq. 7 is binary cross-entropy with logits, averaged over the C classes
  (the multi-label soft-margin loss of image-level WSSS); eq. 7's target is the one-hot vector of M^2d.
- Eq. 5 multiplies scores by the image label ``t^2d``: absent classes are excluded from the argmax
  (with sigmoid scores this is exactly ``argmax_c t_c * sigmoid(A_c)``). Views with no present class
  give no pseudo-labels and are left out of eq. 7.
- Eq. 6 takes the maximum score over all classes, as written in the paper
  [``joint.confidence_2d_over``: ``all`` (paper) | ``present``].
- Where 2D maps are read at a projected point: the image network's stride-8 maps are sampled
  bilinearly at the point's sub-pixel position, with map cell (i, j) at the centre of its receptive
  field, input pixel (8 i, 8 j), i.e. the CAM and features "at the pixel" of the point. (Reading the
  map as if it spanned the image edge to edge puts every cell 3.5 pixels off its receptive field.)
- N_v is capped by random subsampling of each view's correspondences in the data loader
  [``joint.max_points_per_view``], before the N_v x N_v matrices of eq. 8-11.
- Eq. 7 and eq. 11 normalise per view (1/N_v, 1/N_v^2) and are then averaged over the views of the batch.
- Teachers are detached: M^2d and W^2d train only the point network (eq. 7), S^3d,p and W^3d,p train
  only the image network (eq. 11).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from jointwsss.classes import IGNORE_INDEX
# eq. 7's label sources and the loss-term table live in the torch-free experiments module (the Snakefile reads them)
from jointwsss.experiments import IMAGE_NETWORK_LABELS, LOSS_TERMS, TO3D_LABELS, networks_of  # noqa: F401

# ----------------------------------------------------------------------------- eq. 1-2
def global_average_pool(cam: torch.Tensor) -> torch.Tensor:
    """Eq. 1: average the class map over its spatial dims. (B, C, ...) -> (B, C)."""
    return cam.flatten(2).mean(dim=2)


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``l_bce``: BCE with logits averaged over the class dim (last). (..., C) -> (...)."""
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none").mean(dim=-1)


def classification_loss(cam: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ``l_bce(GAP(cam), labels)`` averaged over the batch. cam (B, C, ...), labels (B, C) in {0, 1}."""
    return bce(global_average_pool(cam), labels).mean()


def object_classification_loss(cam: torch.Tensor, class_index: torch.Tensor) -> torch.Tensor:
    """Single-label classification of object crops (the image network's pretraining, an ImageNet stand-in):
    softmax cross-entropy of ``GAP(cam)`` (eq. 1) against the crop's class. cam (B, C, h, w), class_index (B,) long."""
    return F.cross_entropy(global_average_pool(cam.float()), class_index)


def pixel_classification_loss(cam: torch.Tensor, label: torch.Tensor, stride: int, ignore_index: int = IGNORE_INDEX,
                              *, one_vs_rest: bool = False) -> torch.Tensor:
    """Per-pixel classification of labelled frames (the image network's pretraining with ``pretrain.task: frames``,
    an ImageNet stand-in), the CAM read at every pixel as training reads it at a point's pixel
    (:func:`sample_at_pixels`), averaged over the labelled pixels: softmax cross-entropy, or with ``one_vs_rest`` a
    binary cross-entropy per class against the pixel's one-hot class, summed over the classes (``pretrain.pixel_loss``).
    cam (B, C, h, w) logits of a network with output stride ``stride``; label (B, H, W) long class indices of the input
    image's pixels, ``ignore_index`` where unlabelled."""
    height, width = label.shape[-2:]
    uv = image_grid_uv((height, width), (height, width), cam.device)
    logits = sample_at_pixels(cam.float(), uv.expand(cam.shape[0], -1, -1), stride)     # (B, H * W, C)
    label = label.reshape(label.shape[0], -1)
    if not one_vs_rest:
        return F.cross_entropy(logits.transpose(1, 2), label, ignore_index=ignore_index)
    labelled = label != ignore_index
    # The BCE of logit l against 0 is softplus(l), against 1 softplus(l) - l: summed over the classes, the softplus
    # of every class less the logit of the pixel's own (half the time of a one-hot target and a BCE per class).
    own = logits.gather(-1, torch.where(labelled, label, torch.zeros_like(label)).unsqueeze(-1)).squeeze(-1)
    per_pixel = F.softplus(logits).sum(dim=-1) - own
    return (per_pixel * labelled).sum() / labelled.sum().clamp(min=1)


# ----------------------------------------------------------------------------- gathering (eq. 4)
def gather_projected(point_maps: torch.Tensor, cloud_of_view: torch.Tensor, point_idx: torch.Tensor) -> torch.Tensor:
    """Eq. 4, proj(.): per-point outputs of the view's cloud at its visible points.

    point_maps (B, K, N) -- Z^3d or A^3d; cloud_of_view (V,) long in [0, B); point_idx (V, P) long
    (padding entries may hold any valid index, they are masked later). Returns (V, P, K).
    """
    per_view = point_maps[cloud_of_view]                      # (V, K, N)
    idx = point_idx.unsqueeze(1).expand(-1, per_view.shape[1], -1)
    return per_view.gather(2, idx).transpose(1, 2)           # (V, P, K)


def sample_at_pixels(maps: torch.Tensor, uv: torch.Tensor, stride: int) -> torch.Tensor:
    """Bilinear sample of 2D maps at the projected points' pixels.

    maps (V, K, h, w) of a network with output stride ``stride`` (input pixels per map cell), whose
    cell (i, j) is centred on input pixel (stride * i, stride * j); uv (V, P, 2) pixel coordinates
    (column, row; pixel centres at integers) in the network's input image. Beyond the outermost cell
    centres the border cells' values are used. Returns (V, P, K).
    """
    height, width = maps.shape[-2:]

    def to_grid(pixels: torch.Tensor, cells: int) -> torch.Tensor:
        # align_corners=True: -1 and 1 are the centres of the first and the last cell
        return pixels / stride * (2.0 / (cells - 1)) - 1.0 if cells > 1 else torch.zeros_like(pixels)

    grid = torch.stack([to_grid(uv[..., 0], width), to_grid(uv[..., 1], height)], dim=-1)
    out = F.grid_sample(maps, grid.unsqueeze(1).to(maps.dtype), mode="bilinear", padding_mode="border",
                        align_corners=True)                 # (V, K, 1, P)
    return out.squeeze(2).transpose(1, 2)


def image_grid_uv(in_hw: tuple[int, int], out_hw: tuple[int, int], device=None) -> torch.Tensor:
    """(1, H_out * W_out, 2) float32 (column, row) of the centres of an ``out_hw`` pixel grid covering the same frame
    as an ``in_hw`` image, in the input image's pixel coordinates (pixel centres at integers), rows first."""
    (in_h, in_w), (out_h, out_w) = in_hw, out_hw
    u = (torch.arange(out_w, device=device, dtype=torch.float32) + 0.5) * (in_w / out_w) - 0.5
    v = (torch.arange(out_h, device=device, dtype=torch.float32) + 0.5) * (in_h / out_h) - 0.5
    rows, cols = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([cols, rows], dim=-1).reshape(1, -1, 2)


# ----------------------------------------------------------------------------- eq. 5-7
def pseudo_label_2d(scores_2d: torch.Tensor, image_labels: torch.Tensor) -> torch.Tensor:
    """Eq. 5: ``M = argmax_c t_c * score_c``. scores (..., C) in [0, 1], image_labels (..., C) -> (...) long.

    Absent classes can never win (they are set to -1 before the argmax).
    """
    present = image_labels.to(torch.bool)
    return torch.where(present, scores_2d, torch.full_like(scores_2d, -1.0)).argmax(dim=-1)


CONFIDENCE_SCORES = ("sigmoid", "logit")


def confidence_scores(cam: torch.Tensor, score: str = "sigmoid") -> torch.Tensor:
    """The per-class scores whose maximum is eq. 6's and eq. 10's confidence: ``sigmoid(A)`` for ``"sigmoid"``,
    ``max(A, 0)`` for ``"logit"`` (the paper's maximum logit, never negative: a pixel or point where every class is
    negative weighs nothing rather than pushing away from its label). (..., C) logits -> (..., C) >= 0."""
    if score == "sigmoid":
        return torch.sigmoid(cam.float())
    if score == "logit":
        return cam.float().clamp(min=0)
    raise ValueError(f"confidence score must be one of {CONFIDENCE_SCORES}, got {score!r}")


def confidence_2d(scores_2d: torch.Tensor, image_labels: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 6: ``W = max_c score_c`` of :func:`confidence_scores`; with ``image_labels`` the max runs over present
    classes only. (..., C) -> (...)."""
    if image_labels is not None:
        scores_2d = torch.where(image_labels.to(torch.bool), scores_2d, torch.zeros_like(scores_2d))
    return scores_2d.max(dim=-1).values


def masked_view_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid entries of each view, then over views that have any. values/mask (V, ...)."""
    mask = mask.to(values.dtype)
    per_view_count = mask.flatten(1).sum(dim=1)
    per_view = (values * mask).flatten(1).sum(dim=1) / per_view_count.clamp(min=1)
    has_any = per_view_count > 0
    if not bool(has_any.any()):
        return values.sum() * 0.0  # keeps the graph (and DDP's gradient sync) intact
    return per_view[has_any].mean()


def loss_2d_to_3d(cam3d_p: torch.Tensor, cam2d_p: torch.Tensor, image_labels: torch.Tensor, mask: torch.Tensor,
                  *, use_confidence: bool = True, confidence_over: str = "all",
                  confidence_score: str = "sigmoid") -> torch.Tensor:
    """Eq. 7: confidence-weighted BCE of the projected 3D CAM against the 2D pseudo-label.

    cam3d_p (V, P, C) logits of the point network at the visible points (the student);
    cam2d_p (V, P, C) logits of the image network at those points' pixels (the teacher, detached here);
    image_labels (V, C); mask (V, P) bool. Views without any present class are skipped.
    """
    labels = image_labels.unsqueeze(1).expand(-1, cam2d_p.shape[1], -1)
    target, weight = teacher_targets(cam2d_p, labels, use_confidence=use_confidence, confidence_over=confidence_over,
                                     confidence_score=confidence_score)
    valid = mask & image_labels.to(torch.bool).any(dim=1, keepdim=True)
    return point_label_loss(cam3d_p, target, weight, valid)


@torch.no_grad()
def teacher_targets(cam2d_p: torch.Tensor, image_labels: torch.Tensor, *, use_confidence: bool = True,
                    confidence_over: str = "all", confidence_score: str = "sigmoid") -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 5 labels and eq. 6 weights (1 without confidence) from the image network's logits at some pixels.

    cam2d_p (..., C) logits (detached here); image_labels (..., C) in {0, 1}, the view's labels broadcast to
    every pixel; ``confidence_over``: the max of eq. 6 over ``"all"`` classes or the ``"present"`` ones;
    ``confidence_score``: what it is the max of (:func:`confidence_scores`).
    Returns (...) long labels and (...) float32 weights: what eq. 7 trains on, and what ``diagnose`` measures.
    """
    if confidence_over not in ("all", "present"):
        raise ValueError(f"confidence_over must be 'all' or 'present', got {confidence_over!r}")
    cam2d_p = cam2d_p.detach().float()
    target = pseudo_label_2d(torch.sigmoid(cam2d_p), image_labels)
    weight = (confidence_2d(confidence_scores(cam2d_p, confidence_score),
                            image_labels if confidence_over == "present" else None)
              if use_confidence else torch.ones_like(cam2d_p[..., 0]))
    return target, weight


def point_label_loss(cam: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Eq. 7's sum: ``W * l_bce(A, one_hot(M))`` averaged over the valid points of each view, then over views.

    cam (V, P, C) logits; target (V, P) long class indices (any value where not valid); weight (V, P);
    valid (V, P) bool.
    """
    target = torch.where(valid, target, torch.zeros_like(target))
    per_point = weight * bce(cam.float(), F.one_hot(target, cam.shape[-1]))
    return masked_view_mean(per_point, valid)


def ground_truth_to_3d_loss(cam3d_p: torch.Tensor, labels_p: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 7 with the ground truth as its label and W = 1 (diagnostic ``to3d_labels`` modes, not the method).

    cam3d_p (V, P, C) logits; labels_p (V, P) long ground-truth classes, ``IGNORE_INDEX`` for points outside
    the 20 classes (left out, as in evaluation); mask (V, P) bool.
    """
    valid = mask & (labels_p != IGNORE_INDEX)
    return point_label_loss(cam3d_p, labels_p, torch.ones_like(cam3d_p[..., 0], dtype=torch.float32), valid)


# ----------------------------------------------------------------------------- eq. 8-11
def correlation(features_p: torch.Tensor) -> torch.Tensor:
    """Eq. 8 / 9: ``S_ab = z_a . z_b`` of L2-normalised features. (V, P, D) -> (V, P, P)."""
    z = F.normalize(features_p.float(), dim=-1)
    return z @ z.transpose(1, 2)


def confidence_3d_pairs(cam3d_p: torch.Tensor, score: str = "sigmoid") -> torch.Tensor:
    """Eq. 10: ``W_ab = max_c score_a,c * max_c score_b,c`` (:func:`confidence_scores`). (V, P, C) logits -> (V, P, P)."""
    top = confidence_scores(cam3d_p, score).max(dim=-1).values
    return top.unsqueeze(2) * top.unsqueeze(1)


def loss_3d_to_2d(feat2d_p: torch.Tensor, feat3d_p: torch.Tensor, cam3d_p: torch.Tensor, mask: torch.Tensor,
                  *, use_confidence: bool = True, confidence_score: str = "sigmoid") -> torch.Tensor:
    """Eq. 11: ``1/N_v^2 sum_ab W_ab |S2d_ab - S3d_ab|``, averaged over views.

    feat2d_p (V, P, D2) image features at the points' pixels (the student); feat3d_p (V, P, D3) and
    cam3d_p (V, P, C) from the point network (the teacher, detached here); mask (V, P) bool.
    """
    s2d = correlation(feat2d_p)
    with torch.no_grad():
        s3d = correlation(feat3d_p.detach())
        weight = confidence_3d_pairs(cam3d_p.detach(), confidence_score) if use_confidence else torch.ones_like(s3d)
        pair_mask = mask.unsqueeze(2) & mask.unsqueeze(1)
    return masked_view_mean(weight * (s2d - s3d).abs(), pair_mask)


# ----------------------------------------------------------------------------- §4.2 control
def pcam_like_loss(cam3d_p: torch.Tensor, image_labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """§4.2 control: ``l_bce(GAP over the view's visible points of A^3d,p, t^2d)``, averaged over views.

    cam3d_p (V, P, C) logits; image_labels (V, C); mask (V, P).
    """
    m = mask.to(cam3d_p.dtype).unsqueeze(-1)
    counts = m.sum(dim=1)
    has_any = counts.squeeze(-1) > 0
    if not bool(has_any.any()):
        return cam3d_p.sum() * 0.0
    pooled = (cam3d_p * m).sum(dim=1) / counts.clamp(min=1)
    return bce(pooled[has_any].float(), image_labels[has_any]).mean()


# ----------------------------------------------------------------------------- eq. 12
@dataclass(frozen=True)
class LossSwitches:
    """Which terms of eq. 12 are on (Table 2 rows) and how they are weighted."""

    cls2d: bool = True
    cls3d: bool = True
    to3d: bool = True            # L 2D->3D (eq. 7)
    to2d: bool = True            # L 3D->2D (eq. 11)
    to3d_confidence: bool = True # W^2d in eq. 7 (False: W = 1)
    to2d_confidence: bool = True # W^3d,p in eq. 11 (False: W = 1)
    pcam_like: bool = False      # §4.2 control term
    object_cls: bool = False     # the image network's pretraining on object crops (alone; not part of eq. 12)
    pixel_cls: bool = False      # the image network's pretraining on labelled frames (alone; not part of eq. 12)
    lambda_to2d: float = 1.0     # λ of eq. 12
    confidence_2d_over: str = "all"
    confidence_score: str = "sigmoid"  # what eq. 6 and eq. 10 take the maximum of (confidence_scores)
    to3d_labels: str = IMAGE_NETWORK_LABELS  # TO3D_LABELS: eq. 7's labels (ground-truth modes are diagnostics)

    @property
    def terms(self) -> tuple[str, ...]:
        """The switched-on terms, named as in experiments.LOSS_TERMS."""
        return tuple(term for term in LOSS_TERMS if getattr(self, term))

    @property
    def needs_image_network(self) -> bool:
        return "image" in networks_of(self.terms, self.to3d_labels)

    @property
    def needs_point_network(self) -> bool:
        return "point" in networks_of(self.terms, self.to3d_labels)


@dataclass
class JointInputs:
    """Network outputs and correspondences of one batch (see module docstring for shapes)."""

    feat2d: torch.Tensor | None      # (V, D2, h, w)
    cam2d: torch.Tensor | None       # (V, C, h, w)
    feat3d: torch.Tensor | None      # (B, D3, N)
    cam3d: torch.Tensor | None       # (B, C, N)
    image_labels: torch.Tensor       # (V, C)
    scene_labels: torch.Tensor       # (B, C)
    cloud_of_view: torch.Tensor      # (V,) long
    point_idx: torch.Tensor          # (V, P) long
    uv: torch.Tensor                 # (V, P, 2) pixels in the network's input image
    mask: torch.Tensor               # (V, P) bool
    stride2d: int | None             # the image network's output stride (pixels per map cell); None without one
    point_labels: torch.Tensor | None = None  # (B, N) long ground truth per point; only the to3d_labels diagnostics


def total_loss(x: JointInputs, sw: LossSwitches) -> dict[str, torch.Tensor]:
    """Eq. 12: ``L = L_cls^2d + L_cls^3d + L_2d->3d + λ L_3d->2d`` with every term switchable.

    Returns a dict with the enabled terms and ``total``.
    """
    terms: dict[str, torch.Tensor] = {}
    if sw.cls2d:
        terms["cls2d"] = classification_loss(x.cam2d.float(), x.image_labels)
    if sw.cls3d:
        terms["cls3d"] = classification_loss(x.cam3d.float(), x.scene_labels)
    if sw.to3d or sw.to2d or sw.pcam_like:
        cam3d_p = gather_projected(x.cam3d, x.cloud_of_view, x.point_idx)
        if sw.to3d and sw.to3d_labels == IMAGE_NETWORK_LABELS:
            cam2d_p = sample_at_pixels(x.cam2d.detach(), x.uv, x.stride2d)
            terms["to3d"] = loss_2d_to_3d(cam3d_p, cam2d_p, x.image_labels, x.mask,
                                          use_confidence=sw.to3d_confidence, confidence_over=sw.confidence_2d_over,
                                          confidence_score=sw.confidence_score)
        elif sw.to3d and sw.to3d_labels == "ground_truth_visible":
            labels_p = gather_projected(x.point_labels.unsqueeze(1), x.cloud_of_view, x.point_idx)[..., 0]
            terms["to3d"] = ground_truth_to_3d_loss(cam3d_p, labels_p, x.mask)
        elif sw.to3d:  # ground_truth_all_points: every sampled point, each cloud as one "view"
            terms["to3d"] = ground_truth_to_3d_loss(x.cam3d.transpose(1, 2), x.point_labels,
                                                    torch.ones_like(x.point_labels, dtype=torch.bool))
        if sw.to2d:
            feat3d_p = gather_projected(x.feat3d.detach(), x.cloud_of_view, x.point_idx)
            feat2d_p = sample_at_pixels(x.feat2d, x.uv, x.stride2d)
            terms["to2d"] = sw.lambda_to2d * loss_3d_to_2d(feat2d_p, feat3d_p, cam3d_p.detach(), x.mask,
                                                           use_confidence=sw.to2d_confidence,
                                                           confidence_score=sw.confidence_score)
        if sw.pcam_like:
            terms["pcam_like"] = pcam_like_loss(cam3d_p, x.image_labels, x.mask)
    if not terms:
        eq12 = ", ".join(term for term, spec in LOSS_TERMS.items() if not spec.alone)
        raise ValueError(f"no loss term is enabled; switch on at least one of {eq12}")
    terms["total"] = sum(terms.values())
    return terms
