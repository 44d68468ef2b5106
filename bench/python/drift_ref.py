"""PyTorch-in-Python baseline of driftxpress's fields and training step (issue 12, item 1).

Written the way the papers' official PyTorch code writes these things: plain torch ops, softmax over
logits, the matmul form of cdist, one Python loop over temperatures (and over the classes of a batch).
It computes the same numbers as the C++ code it is benchmarked against:

  * standard_field     - src/field/standard_field.cpp (SPEC §2), G groups x N generated x P positives
  * projected_field    - src/field/projected_field.cpp, ProjectedField::compute (SPEC §3): folded
                         summaries, each query's kernel row shifted by its nearest landmark, exact
                         repulsion within class groups shifted by the nearest other sample
  * Generator          - src/model/generator.cpp (same layers, widths, GroupNorm groups)
  * features           - src/model/features.cpp (pixels, pool2, pool4, ...)
  * TrainStep          - src/train/trainer.cpp, Trainer::step (AdamW, warm-up, clipping, EMA)

Needs only python3 + torch (Debian: python3-torch) and numpy.
"""
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- kernel formulas -----------------------------------------------------------------------------

def cdist(x, y, eps=1e-8):
    """sqrt(max(||x - y||^2, eps)) with the matmul expansion, as the official releases write it."""
    xx = (x * x).sum(-1, keepdim=True)
    yy = (y * y).sum(-1).unsqueeze(-2)
    sq = xx + yy - 2.0 * (x @ y.transpose(-1, -2))
    return sq.clamp_min(eps).sqrt()


# ---- the standard drifting field (Deng et al. 2026, Algorithm 2) ---------------------------------

def standard_field(gen, pos, temps=(0.02, 0.05, 0.2), neg=None, neg_weight=None, floor=1e-6, mask_val=100.0):
    """gen: G x N x D (may require grad), pos: G x P x D, neg: optional G x U x D with weight per group.

    Returns (loss, goal, drift, scale s, coordinate scale c). s and the drift normalisation are shared by
    all G groups, as in the official release."""
    G, N, D = gen.shape
    with torch.no_grad():
        old_gen = gen.detach()
        parts = [old_gen] + ([neg] if neg is not None else []) + [pos]
        targets = torch.cat(parts, dim=1)  # G x T x D
        T = targets.shape[1]
        U = 0 if neg is None else neg.shape[1]
        targets_w = torch.ones(G, T, dtype=gen.dtype)
        if U > 0:
            targets_w[:, N:N + U] = torch.as_tensor(neg_weight, dtype=gen.dtype).reshape(-1, 1)
        dist = cdist(old_gen, targets)  # G x N x T
        scale = (dist * targets_w[:, None, :]).mean() / targets_w.mean()
        scale_inputs = torch.clamp(scale / math.sqrt(D), min=1e-3)
        old_gen_scaled = old_gen / scale_inputs
        targets_scaled = targets / scale_inputs
        dist_normed = dist / torch.clamp(scale, min=1e-3)
        dist_normed[:, :, :N].diagonal(dim1=1, dim2=2).add_(mask_val)  # never its own negative
        drift = torch.zeros_like(old_gen_scaled)
        split = N + U
        for R in temps:
            logits = -dist_normed / R
            affinity = torch.softmax(logits, dim=-1) * torch.softmax(logits, dim=-2)
            affinity = torch.sqrt(torch.clamp(affinity, min=floor))
            affinity = affinity * targets_w[:, None, :]
            aff_neg, aff_pos = affinity[:, :, :split], affinity[:, :, split:]
            coeff = torch.cat([-aff_neg * aff_pos.sum(-1, keepdim=True),
                               aff_pos * aff_neg.sum(-1, keepdim=True)], dim=-1)
            force = coeff @ targets_scaled - coeff.sum(-1, keepdim=True) * old_gen_scaled
            force_scale = torch.sqrt(torch.clamp((force ** 2).mean(), min=1e-8))
            drift = drift + force / force_scale
        goal = old_gen_scaled + drift
    loss = ((gen / scale_inputs - goal) ** 2).mean()
    return loss, goal, drift, scale, scale_inputs


# ---- the DriftXpress projected field, query step (Falahati et al. 2026) ---------------------------

class ProjectedSummaries:
    """What the query step reads, cached once: scaled landmarks U (M x D), the feature scale S and, per
    temperature, the folded summaries (W + ridge I)^-1 sum_y k(y, U)^T y ((C+1) x M x D) and
    sum_y k(y, U) (W + ridge I)^-1 ((C+1) x M); row C holds the sums over all classes."""

    def __init__(self, landmarks, scale, temps, fold_num, fold_den, eps=1e-8):
        self.U = landmarks
        self.S = float(scale)
        self.temps = list(temps)
        self.fold_num = fold_num
        self.fold_den = fold_den
        self.eps = eps

    @staticmethod
    def load(directory, prefix=""):
        meta = json.load(open(os.path.join(directory, prefix + "meta.json")))
        ld = lambda name: torch.from_numpy(np.load(os.path.join(directory, prefix + name)))
        temps = meta["temperatures"]
        return ProjectedSummaries(ld("landmarks.npy"), meta["scale"], temps,
                                  [ld("fold_num_%d.npy" % t) for t in range(len(temps))],
                                  [ld("fold_den_%d.npy" % t) for t in range(len(temps))], meta.get("eps", 1e-8))


def projected_field(x, labels, summ):
    """x: B x D raw features (may require grad), labels: B int64 (class-conditional attraction, repulsion
    within each class). Returns (loss, target, drift) in coordinates divided by S."""
    eps = summ.eps
    with torch.no_grad():
        xs = x.detach() / summ.S
        B, D = xs.shape
        # distances to the landmarks, each row shifted by its nearest landmark (SPEC §3 stability)
        d = cdist(xs, summ.U)
        d = d - d.min(dim=1, keepdim=True).values
        groups = [(int(c), (labels == c).nonzero().squeeze(1)) for c in torch.unique(labels)]
        # exact repulsion: within each class group, j != i, each row shifted by its nearest other sample
        rep = []
        for _, idx in groups:
            xg = xs[idx]
            dg = cdist(xg, xg)
            dg.fill_diagonal_(float("inf"))
            rep.append((idx, xg, dg - dg.min(dim=1, keepdim=True).values))
        drift = torch.zeros_like(xs)
        for t, tau in enumerate(summ.temps):
            tau_eff = tau * math.sqrt(D)
            K = torch.exp(-d / tau_eff)
            num = torch.empty_like(xs)
            den = torch.empty(B, dtype=xs.dtype)
            for c, idx in groups:
                Kc = K[idx]
                num[idx] = Kc @ summ.fold_num[t][c]
                den[idx] = Kc @ summ.fold_den[t][c]
            attract = num / den.clamp_min(eps)[:, None]
            repel = torch.empty_like(xs)
            for idx, xg, dg in rep:
                Kg = torch.exp(-dg / tau_eff)
                repel[idx] = (Kg @ xg) / Kg.sum(1).clamp_min(eps)[:, None]
            v = attract - repel
            drift = drift + v / (v.pow(2).mean().sqrt() + eps)
        target = xs + drift
    loss = ((x / summ.S - target) ** 2).mean()
    return loss, target, drift


# ---- generator and feature maps ------------------------------------------------------------------

class Generator(nn.Module):
    """noise (+ class embedding) -> linear w x s x s -> ReLU -> convT 4/2 -> GroupNorm -> ReLU ->
    convT 4/2 -> GroupNorm -> ReLU -> conv 3x3 -> tanh (src/model/generator.cpp)."""

    def __init__(self, noise_dim=64, channels=1, image_size=28, num_classes=10, width=64):
        super().__init__()
        self.s, self.w = image_size // 4, width
        self.class_embed = nn.Embedding(num_classes, noise_dim) if num_classes > 0 else None
        self.fc = nn.Linear(noise_dim, width * self.s * self.s)
        self.up1 = nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1)
        self.norm1 = nn.GroupNorm(math.gcd(8, width // 2), width // 2)
        self.up2 = nn.ConvTranspose2d(width // 2, width // 4, 4, stride=2, padding=1)
        self.norm2 = nn.GroupNorm(math.gcd(8, width // 4), width // 4)
        self.out = nn.Conv2d(width // 4, channels, 3, padding=1)

    def forward(self, z, y=None):
        h = z if self.class_embed is None else z + self.class_embed(y)
        h = F.relu(self.fc(h).view(-1, self.w, self.s, self.s))
        h = F.relu(self.norm1(self.up1(h)))
        h = F.relu(self.norm2(self.up2(h)))
        return torch.tanh(self.out(h))


def features(images, group):
    if group == "pixels":
        return images.flatten(1)
    if group == "pool2":
        return F.avg_pool2d(images, 2).flatten(1)
    if group == "pool4":
        return F.avg_pool2d(images, 4).flatten(1)
    if group == "sq_mean":
        return (images * images).mean((2, 3))
    raise ValueError("feature group %r is not in the Python baseline" % group)


# ---- data ----------------------------------------------------------------------------------------

def load_mnist(data_dir, split="train"):
    """IDX files from data/mnist, scaled to [-1, 1] as src/data/datasets.cpp does (v / 127.5 - 1)."""
    prefix = "train" if split == "train" else "t10k"
    d = os.path.join(data_dir, "mnist")

    def read(name):  # raw or .gz, as the C++ reader accepts
        path = os.path.join(d, name)
        if os.path.exists(path):
            return np.fromfile(path, dtype=np.uint8)
        with gzip.open(path + ".gz", "rb") as f:
            return np.frombuffer(f.read(), dtype=np.uint8)

    raw = read(prefix + "-images-idx3-ubyte")
    n, h, w = (int.from_bytes(raw[i:i + 4].tobytes(), "big") for i in (4, 8, 12))
    images = (raw[16:].reshape(n, 1, h, w).astype(np.float64) / 127.5 - 1.0).astype(np.float32)
    labels = read(prefix + "-labels-idx1-ubyte")[8:].astype(np.int64)
    return torch.from_numpy(images), torch.from_numpy(labels)


# ---- the training step ---------------------------------------------------------------------------

class TrainStep:
    """One optimisation step of either method, as Trainer::step does it: class-major batch of
    classes_per_step x gen_per_class, one loss per feature group summed, AdamW (betas 0.9/0.95, no weight
    decay), linear warm-up of the learning rate, gradient clipping at 2, EMA with a warmed-up decay."""

    def __init__(self, method, images, labels, groups=("pixels", "pool2", "pool4"), summaries=None, width=64,
                 classes_per_step=10, gen_per_class=25, pos_per_class=256, temps=(0.02, 0.05, 0.2), lr=None,
                 warmup=100, grad_clip=2.0, ema=0.999, floor=1e-6, seed=0):
        torch.manual_seed(seed)
        self.method, self.groups, self.summaries = method, list(groups), summaries
        self.images, self.labels = images, labels
        self.num_classes = int(labels.max()) + 1
        self.class_index = [torch.nonzero(labels == c).squeeze(1) for c in range(self.num_classes)]
        self.Nc, self.N, self.P = classes_per_step, gen_per_class, pos_per_class
        self.temps, self.floor = list(temps), floor
        self.gen = Generator(width=width, num_classes=self.num_classes, channels=images.shape[1],
                             image_size=images.shape[2])
        self.ema_gen = Generator(width=width, num_classes=self.num_classes, channels=images.shape[1],
                                 image_size=images.shape[2])
        self.ema_gen.load_state_dict(self.gen.state_dict())
        for p in self.ema_gen.parameters():
            p.requires_grad_(False)
        self.lr = lr if lr is not None else (8e-3 if method == "standard" else 4e-3)
        self.opt = torch.optim.AdamW(self.gen.parameters(), lr=self.lr, betas=(0.9, 0.95), weight_decay=0.0)
        self.warmup, self.grad_clip, self.ema = warmup, grad_clip, ema
        self.step_count = 0

    def sample_batch(self):
        classes = torch.randperm(self.num_classes)[:self.Nc].sort().values
        return torch.randn(self.Nc * self.N, 64), classes.repeat_interleave(self.N), classes

    def group_loss(self, images, labels, classes, group):
        phi = features(images, group)
        if self.method == "driftxpress":
            return projected_field(phi, labels, self.summaries[group])[0]
        with torch.no_grad():  # positives: P random real samples per class, encoded every step
            idx = torch.stack([self.class_index[c][torch.randint(len(self.class_index[c]), (self.P,))]
                               for c in classes.tolist()])
            pos = features(self.images[idx.view(-1)], group).view(self.Nc, self.P, -1)
        return standard_field(phi.view(self.Nc, self.N, -1), pos, self.temps, floor=self.floor)[0]

    def loss(self, z, labels, classes):
        images = self.gen(z, labels)
        losses = [self.group_loss(images, labels, classes, g) for g in self.groups]
        return sum(losses), losses

    def step(self):
        z, labels, classes = self.sample_batch()
        self.gen.train()
        loss, losses = self.loss(z, labels, classes)
        group_losses = [l.item() for l in losses]
        if not math.isfinite(sum(group_losses)):
            raise RuntimeError("loss became %s" % sum(group_losses))
        for g in self.opt.param_groups:
            g["lr"] = self.lr * min(1.0, (self.step_count + 1) / max(1, self.warmup))
        self.opt.zero_grad()
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.gen.parameters(), self.grad_clip)
        self.opt.step()
        self.step_count += 1
        with torch.no_grad():
            d = min(self.ema, (1.0 + self.step_count) / (10.0 + self.step_count))
            for pe, p in zip(self.ema_gen.parameters(), self.gen.parameters()):
                pe.mul_(d).add_(p.detach(), alpha=1.0 - d)
        return group_losses


# ---- timing and comparison helpers ---------------------------------------------------------------

def time_calls(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(np.median(samples)), "min_ms": min(samples), "max_ms": max(samples),
            "samples_ms": samples}


def max_rel_diff(ours, ref):
    """max |ours - ref| / max |ref|: the largest entry error relative to the tensor's scale."""
    ours, ref = ours.double(), ref.double()
    return float((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def npy(directory, name):
    return torch.from_numpy(np.load(os.path.join(directory, name)))


def setup_threads(n):
    torch.set_num_threads(n)
    return {"threads": torch.get_num_threads(), "torch": torch.__version__}
