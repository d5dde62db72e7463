"""Object detection: a small Faster R-CNN (backbone, RPN, NMS, RoI Align head) finds shapes.

Lecture 3's detector in four steps, on generated 48x48 scenes holding 1-4 rectangles, discs and
triangles on a noisy background:

1. a CNN **backbone** turns the image into a 12x12 feature map (stride 4);
2. a **region proposal network** (RPN) slides over it and, for each of the 6 anchor boxes of
   each cell, scores "object or not" and regresses a box correction ``(dy, dx, dh, dw)``;
3. the corrected anchors are the **proposals**; non-maximum suppression (NMS) keeps the best
   of each cluster of overlapping ones;
4. **RoI Align** crops a fixed 6x6 grid of features under every proposal, and a small dense
   **head** classifies it (background or one of the classes) and refines its box once more.

Training is the paper's approximate joint training: each step runs the RPN alone to get
proposals (NMS and target matching on the host, in NumPy), then one ``gn.compile``d program
computes the four losses (RPN objectness and box, head class and box) and the gradients of
their sum with respect to every weight, proposals fed back in as data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import graphnet as gn
from demos.common import draw_layers, plt, progress, rounded, savefig

ORDER = 3  # Lecture 3: convolution and CNN classification, segmentation, then detection

CLASSES = ("background", "rectangle", "disc", "triangle")  # label 0 is background
SIZE = 48                    # image side in pixels
STRIDE = 4                   # image pixels per feature cell (two 2x2 max pools)
ANCHOR_SIZES = (10, 18)      # anchor side sqrt(h w) in pixels ...
ANCHOR_RATIOS = (0.5, 1.0, 2.0)  # ... times these height / width ratios: 6 anchors per cell
ROI_SIZE = 6                 # RoI Align output grid (cells)
HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # scale of the head's box targets (Faster R-CNN's)
LOSS_NAMES = ("rpn_objectness", "rpn_box", "head_class", "head_box")


# -- data: generated scenes ------------------------------------------------------------------
def make_scenes(n: int, rng: np.random.Generator, max_objects: int = 4
                ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """``n`` noisy grey scenes (n, 48, 48, 1) and, per scene, its boxes (k, 4) as
    ``(y1, x1, y2, x2)`` in pixels and their class labels (k,) in 1..3. Thin line strokes
    are clutter: no class, so the detector must learn to call them background."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5           # pixel centres
    images = np.empty((n, SIZE, SIZE, 1), np.float32)
    all_boxes, all_labels = [], []
    for i in range(n):
        img = rng.uniform(0.0, 0.25) + rng.normal(0.0, rng.uniform(0.04, 0.15), (SIZE, SIZE))
        for _ in range(rng.integers(0, 4)):   # clutter: a stroke 1.5 px wide, 8-20 px long
            p, angle = rng.uniform(4, SIZE - 4, 2), rng.uniform(0, np.pi)
            u = np.array([np.sin(angle), np.cos(angle)])
            t = np.clip((yy - p[0]) * u[0] + (xx - p[1]) * u[1], 0, rng.uniform(8, 20))
            near = (yy - p[0] - t * u[0]) ** 2 + (xx - p[1] - t * u[1]) ** 2 <= 0.75 ** 2
            img[near] = rng.uniform(0.4, 1.0)
        boxes: list[list[float]] = []
        labels: list[int] = []
        for _ in range(rng.integers(1, max_objects + 1)):
            for _try in range(30):  # find a place at least a pixel away from the others
                cls = int(rng.integers(1, len(CLASSES)))
                side = rng.uniform(6.0, 22.0)
                aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0))) if cls == 1 else 1.0
                h, w = side * np.sqrt(aspect), side / np.sqrt(aspect)
                y1, x1 = rng.uniform(1.0, SIZE - 1 - h), rng.uniform(1.0, SIZE - 1 - w)
                grown = np.array([[y1 - 1, x1 - 1, y1 + h + 1, x1 + w + 1]])
                if not boxes or gn.detection.box_iou(grown, np.array(boxes)).max() == 0:
                    break
            else:
                continue
            inside = (yy >= y1) & (yy < y1 + h) & (xx >= x1) & (xx < x1 + w)
            if cls == 2:    # disc: within the inscribed circle
                inside &= (yy - y1 - h / 2) ** 2 + (xx - x1 - w / 2) ** 2 <= (h / 2) ** 2
            elif cls == 3:  # triangle: apex at the top centre, base along the bottom
                inside &= np.abs(xx - x1 - w / 2) <= (yy - y1) / h * w / 2
            img[inside] = rng.uniform(0.4, 1.0)
            boxes.append([y1, x1, y1 + h, x1 + w])
            labels.append(cls)
        images[i, :, :, 0] = img
        all_boxes.append(np.array(boxes, np.float32).reshape(-1, 4))
        all_labels.append(np.array(labels, np.int64))
    return images, all_boxes, all_labels


# -- the network ------------------------------------------------------------------------------
def weighted_bce(logits: gn.Tensor, labels: gn.Tensor, weights: gn.Tensor) -> gn.Tensor:
    """sum_i w_i bce(z_i, y_i), bce in its stable form max(z, 0) - z y + log(1 + e^-|z|):
    ``gn.sigmoid_cross_entropy`` averages every anchor, but the RPN learns from a sample of
    them (weights 1/n on the sampled anchors, 0 on the rest)."""
    bce = gn.relu(logits) - logits * labels + gn.log(1.0 + gn.exp(-gn.abs(logits)))
    return gn.sum(weights * bce)


def masked_smooth_l1(pred: gn.Tensor, target: gn.Tensor, mask: gn.Tensor, scale: gn.Tensor,
                     beta: float = 1.0 / 9) -> gn.Tensor:
    """Smooth L1 averaged over the entries where ``mask`` is 1 (only boxes matched to an
    object have a box target): ``|d| - beta / 2``, or ``d^2 / (2 beta)`` below ``beta``, which
    is ``gn.huber(delta=beta) / beta``. Masked entries add 0 to huber's mean over every entry;
    ``scale`` = entries / kept entries turns it into the mean over the kept ones."""
    return gn.huber(pred * mask, target, delta=beta) * scale * (1.0 / beta)


@dataclass
class Detector:
    """The detector's graph: its Inputs by name, the outputs the programs fetch, the losses,
    the trainable weights, and the anchors its RPN outputs are laid out on."""

    feeds: dict            # name -> Input
    rpn_outputs: list      # objectness logits (B, N), box deltas (B, N, 4)
    head_outputs: list     # class logits (R, 4), class-specific box deltas (R, 16)
    losses: list           # the four losses, LOSS_NAMES order
    total: gn.Tensor
    params: list
    anchors: np.ndarray    # (N, 4)


def build_detector(batch: int, width: int, seed: int) -> Detector:
    """A Faster R-CNN for ``batch`` images per step; ``width`` sets the channels."""
    L = gn.layers
    a = len(ANCHOR_SIZES) * len(ANCHOR_RATIOS)
    fh = SIZE // STRIDE
    n_anchors = fh * fh * a
    c = len(CLASSES)
    g = gn.Graph()
    with g:
        f = {"images": gn.Input((batch, SIZE, SIZE, 1), batch=False, name="images")}
        layers = [L.Conv2D(width // 2, 3, padding="same", activation="relu", seed=seed,
                           name="conv1"),
                  L.MaxPool2D(2, name="pool1"),
                  L.Conv2D(width, 3, padding="same", activation="relu", seed=seed + 1,
                           name="conv2"),
                  L.MaxPool2D(2, name="pool2"),
                  L.Conv2D(width, 3, padding="same", activation="relu", seed=seed + 2,
                           name="conv3")]
        features = f["images"]
        for layer in layers:
            features = layer(features)                     # (B, 12, 12, width)

        # RPN: a 3x3 conv, then per cell A objectness logits and A (dy, dx, dh, dw)
        rpn = [L.Conv2D(width, 3, padding="same", activation="relu", seed=seed + 3,
                        name="rpn_conv"),
               L.Conv2D(a, 1, seed=seed + 4, name="rpn_objectness"),
               L.Conv2D(4 * a, 1, seed=seed + 5, name="rpn_deltas")]
        hidden = rpn[0](features)
        # flattened (H, W, A) as gn.detection.anchors orders them
        objectness = gn.reshape(rpn[1](hidden), (batch, n_anchors))
        deltas = gn.reshape(rpn[2](hidden), (batch, n_anchors, 4))

        # head: a 6x6 RoI Align crop of the features under each proposal, two dense layers
        f["rois"] = gn.Input((4,), name="rois")                     # (R, 4) boxes, pixels
        f["roi_image"] = gn.Input((), dtype="int64", name="roi_image")  # (R,) image index
        crops = gn.roi_align(features, f["rois"], f["roi_image"], output_size=ROI_SIZE,
                             sampling_ratio=2, spatial_scale=1.0 / STRIDE)
        head = [L.Flatten(name="flatten"),
                L.Dense(128, activation="relu", seed=seed + 6, name="head_fc"),
                L.Dense(c, seed=seed + 7, name="head_class"),
                L.Dense(4 * c, seed=seed + 8, name="head_box")]
        z = head[1](head[0](crops))
        class_logits, box_deltas = head[2](z), head[3](z)

        # the four losses; their targets are computed on the host each step
        f["rpn_labels"] = gn.Input((batch, n_anchors), batch=False, name="rpn_labels")
        f["rpn_weights"] = gn.Input((batch, n_anchors), batch=False, name="rpn_weights")
        f["rpn_targets"] = gn.Input((batch, n_anchors, 4), batch=False, name="rpn_targets")
        f["rpn_mask"] = gn.Input((batch, n_anchors, 1), batch=False, name="rpn_mask")
        f["rpn_scale"] = gn.Input((), batch=False, name="rpn_scale")
        f["roi_labels"] = gn.Input((), dtype="int64", name="roi_labels")
        f["roi_targets"] = gn.Input((4 * c,), name="roi_targets")
        f["roi_mask"] = gn.Input((4 * c,), name="roi_mask")
        f["roi_scale"] = gn.Input((), batch=False, name="roi_scale")
        with g.name_scope("rpn_loss"):
            losses = [weighted_bce(objectness, f["rpn_labels"], f["rpn_weights"]),
                      masked_smooth_l1(deltas, f["rpn_targets"], f["rpn_mask"], f["rpn_scale"])]
        with g.name_scope("head_loss"):
            losses += [gn.softmax_cross_entropy(class_logits, f["roi_labels"]),
                       masked_smooth_l1(box_deltas, f["roi_targets"], f["roi_mask"],
                                        f["roi_scale"])]
        with g.name_scope("total_loss"):
            total = losses[0] + losses[1] + losses[2] + losses[3]
    params = [w for layer in layers + rpn + head for w in layer.trainable_weights]
    anchors = gn.detection.anchors((fh, fh), STRIDE, ANCHOR_SIZES, ANCHOR_RATIOS)
    return Detector(f, [objectness, deltas], [class_logits, box_deltas], losses, total,
                    params, anchors)


# -- host side: targets, proposals, detections ------------------------------------------------
def sample(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``k`` of ``idx``, drawn without replacement."""
    return idx if len(idx) <= k else rng.choice(idx, k, replace=False)


def rpn_targets(anchors: np.ndarray, gt_boxes: list[np.ndarray], rng: np.random.Generator,
                per_image: int = 64) -> dict[str, np.ndarray]:
    """The RPN's training targets: label anchors against the ground truth
    (``gn.detection.match_anchors``: object at IoU >= 0.7 or best for a box, background
    below 0.3), sample ``per_image`` of them (at most half objects), encode the box targets."""
    b, n = len(gt_boxes), len(anchors)
    labels = np.zeros((b, n), np.float32)
    weights = np.zeros((b, n), np.float32)
    targets = np.zeros((b, n, 4), np.float32)
    mask = np.zeros((b, n, 1), np.float32)
    for i, gt in enumerate(gt_boxes):
        lab, tgt = gn.detection.match_anchors(anchors, gt, pos_iou=0.7, neg_iou=0.3)
        pos = sample(np.flatnonzero(lab == 1), per_image // 2, rng)
        neg = sample(np.flatnonzero(lab == 0), per_image - len(pos), rng)
        labels[i, pos] = 1.0
        weights[i, pos] = weights[i, neg] = 1.0
        targets[i, pos] = tgt[pos]
        mask[i, pos] = 1.0
    weights /= weights.sum()
    return {"rpn_labels": labels, "rpn_weights": weights, "rpn_targets": targets,
            "rpn_mask": mask, "rpn_scale": np.float32(mask.size / max(mask.sum(), 1.0))}


def clip_boxes(boxes: np.ndarray) -> np.ndarray:
    """Boxes cut to the image."""
    return np.clip(boxes, 0.0, float(SIZE))


def proposals(objectness: np.ndarray, deltas: np.ndarray, anchors: np.ndarray, keep: int,
              nms_iou: float = 0.7, pre_nms: int = 300) -> list[dict[str, np.ndarray]]:
    """Per image, the RPN's proposals: anchors moved by their deltas, cut to the image, the
    ``pre_nms`` best by objectness, then NMS at ``nms_iou``, ``keep`` at most."""
    out = []
    for logit, d in zip(objectness, deltas):
        boxes = clip_boxes(gn.detection.decode_boxes(anchors, d))
        side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        order = np.argsort(-logit, kind="stable")
        order = order[side[order] >= 2.0][:pre_nms]       # drop slivers, keep the best
        boxes, scores = boxes[order], 1.0 / (1.0 + np.exp(-logit[order]))
        kept = gn.detection.nms(boxes, scores, nms_iou, max_output_size=keep)
        out.append({"before": boxes, "before_scores": scores, "boxes": boxes[kept],
                    "scores": scores[kept]})
    return out


def head_targets(props: list[dict], gt_boxes: list[np.ndarray], gt_labels: list[np.ndarray],
                 rng: np.random.Generator, per_image: int = 32, fg_fraction: float = 0.25
                 ) -> dict[str, np.ndarray]:
    """The head's training RoIs: proposals plus the ground-truth boxes, labelled with the class
    of the box they overlap at IoU >= 0.5 (else background, 0); ``per_image`` sampled, at
    most a quarter objects; box targets in the label's 4 columns of the class-specific head."""
    c = len(CLASSES)
    rois, image, labels, targets = [], [], [], []
    for i, (p, gt, gl) in enumerate(zip(props, gt_boxes, gt_labels)):
        boxes = np.concatenate([p["boxes"], gt])
        iou = gn.detection.box_iou(boxes, gt)
        best = iou.argmax(1)
        lab = np.where(iou.max(1) >= 0.5, gl[best], 0)
        fg = sample(np.flatnonzero(lab > 0), int(per_image * fg_fraction), rng)
        bg = sample(np.flatnonzero(lab == 0), per_image - len(fg), rng)
        pick = np.concatenate([fg, bg])
        t = np.zeros((len(pick), c, 4), np.float32)       # (dy, dx, dh, dw) per class
        t[np.arange(len(fg)), lab[fg]] = gn.detection.encode_boxes(boxes[fg], gt[best[fg]],
                                                                   HEAD_WEIGHTS)
        rois.append(boxes[pick])
        image.append(np.full(len(pick), i, np.int64))
        labels.append(lab[pick])
        targets.append(t.reshape(len(pick), 4 * c))
    labels_ = np.concatenate(labels)
    mask = (np.arange(4 * c)[None, :] // 4 == labels_[:, None]) & (labels_[:, None] > 0)
    return {"rois": np.concatenate(rois).astype(np.float32), "roi_image": np.concatenate(image),
            "roi_labels": labels_, "roi_targets": np.concatenate(targets),
            "roi_mask": mask.astype(np.float32),
            "roi_scale": np.float32(mask.size / max(mask.sum(), 1))}


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax on the host."""
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def detections(props: list[dict], class_logits: np.ndarray, box_deltas: np.ndarray,
               min_score: float = 0.05, nms_iou: float = 0.5, keep: int = 10
               ) -> list[dict[str, np.ndarray]]:
    """Per image, the final boxes: each proposal's class-specific refined box and score for
    every class, class-wise NMS at ``nms_iou``, the ``keep`` best overall."""
    probs = softmax(class_logits)
    out, start = [], 0
    for p in props:
        n = len(p["boxes"])
        boxes, scores, labels = [], [], []
        for cls in range(1, len(CLASSES)):
            s = probs[start:start + n, cls]
            d = box_deltas[start:start + n, 4 * cls:4 * cls + 4]
            b = clip_boxes(gn.detection.decode_boxes(p["boxes"], d, HEAD_WEIGHTS))
            k = gn.detection.nms(b, s, nms_iou, score_threshold=min_score)
            boxes.append(b[k])
            scores.append(s[k])
            labels.append(np.full(len(k), cls))
        start += n
        b, s, lab = np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels)
        top = np.argsort(-s, kind="stable")[:keep]
        out.append({"boxes": b[top], "scores": s[top], "labels": lab[top]})
    return out


def run_detector(det: Detector, programs: dict, images: np.ndarray, batch: int,
                 keep: int) -> tuple[list[dict], list[dict]]:
    """Proposals and detections for every image, ``batch`` at a time (the graph's batch)."""
    props, dets = [], []
    for s in range(0, len(images), batch):
        chunk = images[s:s + batch]
        n = len(chunk)
        if n < batch:  # the graph's batch is fixed: pad with copies of the first image
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch - n, 0)])
        obj, deltas = programs["rpn"]({det.feeds["images"]: chunk})
        p = proposals(obj, deltas, det.anchors, keep)
        rois = np.concatenate([q["boxes"] for q in p]).astype(np.float32)
        image = np.concatenate([np.full(len(q["boxes"]), i, np.int64) for i, q in enumerate(p)])
        logits, box_deltas = programs["head"]({det.feeds["images"]: chunk,
                                               det.feeds["rois"]: rois,
                                               det.feeds["roi_image"]: image})
        props += p[:n]
        dets += detections(p, logits, box_deltas)[:n]
    return props, dets


# -- evaluation ---------------------------------------------------------------------------------
def proposal_recall(props: list[dict], gt_boxes: list[np.ndarray], iou: float = 0.5) -> float:
    """The fraction of ground-truth boxes that some proposal overlaps at IoU >= ``iou``."""
    hit = total = 0
    for p, gt in zip(props, gt_boxes):
        total += len(gt)
        if len(p["boxes"]) and len(gt):
            hit += int((gn.detection.box_iou(gt, p["boxes"]).max(1) >= iou).sum())
    return hit / max(total, 1)


def average_precision(dets: list[dict], gt_boxes: list[np.ndarray],
                      gt_labels: list[np.ndarray], cls: int, iou: float = 0.5) -> float:
    """PASCAL VOC's AP of one class: detections of every image by decreasing score, each a
    true positive when it overlaps a not yet found box of its class at IoU >= ``iou``; the
    area under the precision-recall curve with precision made non-increasing."""
    found = [np.zeros((gl == cls).sum(), bool) for gl in gt_labels]
    n_gt = sum(len(f) for f in found)
    entries = [(s, i, b) for i, d in enumerate(dets)
               for s, b, lab in zip(d["scores"], d["boxes"], d["labels"]) if lab == cls]
    entries.sort(key=lambda e: -e[0])
    tp = np.zeros(len(entries))
    for k, (_, i, b) in enumerate(entries):
        gt = gt_boxes[i][gt_labels[i] == cls]
        if len(gt):
            o = gn.detection.box_iou(b[None], gt)[0]
            j = int(o.argmax())
            if o[j] >= iou and not found[i][j]:
                found[i][j] = True
                tp[k] = 1
    if n_gt == 0:
        return float("nan")
    ctp = np.cumsum(tp)
    recall = np.concatenate([[0.0], ctp / n_gt, [ctp[-1] / n_gt if len(ctp) else 0.0]])
    precision = np.concatenate([[1.0], ctp / np.arange(1, len(tp) + 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]   # the envelope
    return float(np.sum(np.diff(recall) * precision[1:]))


# -- pictures -----------------------------------------------------------------------------------
COLORS = {1: "#1f77b4", 2: "#d62728", 3: "#2ca02c"}


def _box(ax, b, color, lw=1.5, ls="-", alpha=1.0, label=None):
    y1, x1, y2, x2 = b
    ax.add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False,
                               edgecolor=color, lw=lw, ls=ls, alpha=alpha))
    if label:
        ax.text(x1 - 0.5, y1 - 0.8, label, color="white", fontsize=7, va="bottom",
                bbox={"facecolor": color, "pad": 0.8, "lw": 0, "alpha": 0.85})


def _image(ax, img, title):
    ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set(xticks=[], yticks=[], xlim=(-0.5, SIZE - 0.5), ylim=(SIZE - 0.5, -0.5))
    ax.grid(False)
    ax.set_title(title, fontsize=9)


def draw_results(images, gt_boxes, gt_labels, dets, out, n=8, min_score=0.5):
    """The first ``n`` held-out scenes with their ground truth and confident detections."""
    fig, axes = plt.subplots(2, n // 2, figsize=(2.3 * n // 2, 5.4))
    for ax, img, gb, d in zip(axes.ravel(), images, gt_boxes, dets):
        keep = d["scores"] >= min_score
        _image(ax, img, f"{len(gb)} object{'s' * (len(gb) > 1)}, {int(keep.sum())} detected")
        for b in gb:
            _box(ax, b, "yellow", lw=1.0, ls="--")
        for b, s, lab in zip(d["boxes"][keep], d["scores"][keep], d["labels"][keep]):
            _box(ax, b, COLORS[int(lab)], label=f"{CLASSES[lab]} {s:.2f}")
    fig.suptitle(f"held-out scenes: ground truth (dashed yellow) and detections with score "
                 f">= {min_score} (class, score)", fontsize=10)
    fig.tight_layout()
    return savefig(fig, out, "lecture3_detection_results")


def draw_pipeline(image, gt, anchors, labels, prop, det, out, keep):
    """One image through the detector: anchors, proposals before and after NMS, detections."""
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.8))
    a = len(ANCHOR_SIZES) * len(ANCHOR_RATIOS)
    fh = SIZE // STRIDE
    _image(axes[0], image, f"anchors: {a} per cell, {fh}x{fh} cells ({len(anchors)})\n"
                           f"one cell's in blue, positives in red")
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    axes[0].plot(centres[::a, 1] - 0.5, centres[::a, 0] - 0.5, ".", color="#4c9be8", ms=2)
    cell = a * (fh // 2 * fh + fh // 2)                     # the anchors of a central cell
    for b in anchors[cell:cell + a]:
        _box(axes[0], b, "#4c9be8", lw=1.0)
    for b in anchors[labels == 1]:
        _box(axes[0], b, "#ff4040", lw=1.0)
    top = min(100, len(prop["before"]))
    _image(axes[1], image, f"RPN proposals before NMS: {top} best\nof "
                           f"{len(prop['before'])} (brighter = higher objectness)")
    for b, s in zip(prop["before"][:top][::-1], prop["before_scores"][:top][::-1]):
        _box(axes[1], b, "#ff8c00", lw=0.8, alpha=float(0.15 + 0.85 * s))
    _image(axes[2], image, f"after NMS (IoU > 0.7 suppressed):\n"
                           f"{len(prop['boxes'])} proposals kept (at most {keep})")
    for b, s in zip(prop["boxes"][::-1], prop["scores"][::-1]):
        _box(axes[2], b, "#ff8c00", lw=1.0, alpha=float(0.25 + 0.75 * s))
    good = det["scores"] >= 0.5
    _image(axes[3], image, "head: class and refined box,\nclass-wise NMS, score >= 0.5")
    for b in gt:
        _box(axes[3], b, "yellow", lw=1.0, ls="--")
    for b, s, lab in zip(det["boxes"][good], det["scores"][good], det["labels"][good]):
        _box(axes[3], b, COLORS[int(lab)], label=f"{CLASSES[lab]} {s:.2f}")
    fig.tight_layout()
    return savefig(fig, out, "lecture3_detection_pipeline")


def draw_losses(history: dict[str, list[float]], out):
    """The four training losses, each step (light) and a moving average (dark)."""
    titles = {"rpn_objectness": "RPN objectness (sampled BCE)",
              "rpn_box": "RPN box (smooth L1, positives)",
              "head_class": "head class (softmax CE, 4 classes)",
              "head_box": "head box (smooth L1, object RoIs)"}
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.0))
    for ax, (k, title) in zip(axes, titles.items()):
        v = np.asarray(history[k])
        w = max(1, len(v) // 25)
        smooth = np.convolve(v, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(len(v)), v, color="C0", alpha=0.25, lw=0.8)
        ax.plot(np.arange(w - 1, len(v)), smooth, color="C0", lw=1.8)
        ax.set(title=title, xlabel="step", yscale="log")
    fig.tight_layout()
    return savefig(fig, out, "lecture3_detection_losses")


# -- the demo -----------------------------------------------------------------------------------
def run(quick: bool, out: Path, seed: int) -> dict:
    out = Path(out)
    rng = np.random.default_rng(seed)
    batch, width, steps, n_test = (4, 16, 150, 32) if quick else (8, 32, 1500, 400)
    train_keep, test_keep = 50, 20
    det = build_detector(batch, width, seed)
    f = det.feeds
    programs = {"train": gn.compile(det.total, wrt=det.params, training=True),
                "rpn": gn.compile(det.rpn_outputs), "head": gn.compile(det.head_outputs)}
    opt = gn.optimizers.Adam(learning_rate=gn.schedules.CosineDecay(2e-3, steps))

    history: dict[str, list[float]] = {k: [] for k in LOSS_NAMES}
    t0 = time.perf_counter()
    for _ in progress(range(steps), "training", quick=quick):
        images, gt_boxes, gt_labels = make_scenes(batch, rng)
        obj, deltas = programs["rpn"]({f["images"]: images})       # proposals, current weights
        props = proposals(obj, deltas, det.anchors, train_keep)
        feeds = {"images": images, **rpn_targets(det.anchors, gt_boxes, rng),
                 **head_targets(props, gt_boxes, gt_labels, rng)}
        _, grads = programs["train"]({f[k]: v for k, v in feeds.items()})
        opt.apply(grads, det.params)
        values = programs["train"].values()                         # every node's value
        for k, t in zip(LOSS_NAMES, det.losses):
            history[k].append(float(values[t]))
    train_seconds = time.perf_counter() - t0

    test_rng = np.random.default_rng(seed + 10_000)                # held-out scenes
    images, gt_boxes, gt_labels = make_scenes(n_test, test_rng)
    props, dets = run_detector(det, programs, images, batch, test_keep)
    aps = {CLASSES[c]: average_precision(dets, gt_boxes, gt_labels, c)
           for c in range(1, len(CLASSES))}
    strict = [average_precision(dets, gt_boxes, gt_labels, c, iou=0.75)
              for c in range(1, len(CLASSES))]

    k = max(1, steps // 10)   # the first and last tenth of training
    i = int(np.argmax([len(b) for b in gt_boxes[:20]]))      # a busy scene for the pipeline
    labels, _ = gn.detection.match_anchors(det.anchors, gt_boxes[i])
    pictures = [draw_results(images, gt_boxes, gt_labels, dets, out).name,
                draw_pipeline(images[i], gt_boxes[i], det.anchors, labels, props[i], dets[i],
                              out, test_keep).name,
                draw_losses(history, out).name]
    model = draw_layers(det.total, out, "lecture3_detection_model", legend=False, dpi=64)
    if not model.startswith("no drawing"):
        pictures.append(Path(model).name)
    return rounded({
        "steps": steps, "batch": batch, "train_seconds": train_seconds,
        "losses_start": {n: float(np.mean(v[:k])) for n, v in history.items()},
        "losses_end": {n: float(np.mean(v[-k:])) for n, v in history.items()},
        "test_images": n_test, "test_objects": int(sum(len(g) for g in gt_boxes)),
        "proposals_per_image": test_keep, "rpn_recall@0.5": proposal_recall(props, gt_boxes),
        "AP@0.5": aps, "mAP@0.5": float(np.nanmean(list(aps.values()))),
        "mAP@0.75": float(np.nanmean(strict)),
        "pictures": pictures}, 3)
