"""Patient-level DP-SGD for the discriminator.

The protected record is a **patient**, not a vertebral unit (VU): one patient contributes many VUs,
so a VU-level guarantee of epsilon becomes, by group privacy, roughly (VUs per patient) x epsilon per
patient. One private step of :class:`PatientDPOptimizer`, named after the steps of the algorithm
(as Opacus's ``DPOptimizer`` is):

1. :meth:`~PatientDPOptimizer.sample_patients`: Poisson sampling of train *patients*, each with
   probability ``q = expected patients per step / N_patients`` (optionally at most ``k`` of a sampled
   patient's VUs, drawn at random: a bounded contribution that bounds the compute too).
2. :meth:`~PatientDPOptimizer.per_vu_gradients`: per-VU gradients of D's loss on the real VUs
   (``torch.func``: ``vmap`` of ``grad`` over a functional call of D).
3. :meth:`~PatientDPOptimizer.sum_per_patient`: the per-VU gradients summed per patient.
4. :meth:`~PatientDPOptimizer.clip`: each patient's summed gradient scaled to norm at most ``C``
   (the clip norm), then summed over patients. Removing or adding one patient changes this sum by at
   most ``C`` (:func:`clipped_sum` is the function the sensitivity test checks by brute force).
5. :meth:`~PatientDPOptimizer.add_noise`: Gaussian noise ``N(0, (sigma C)^2)`` on every coordinate.
6. :meth:`~PatientDPOptimizer.scale`: divided by the *expected* number of real VUs per step (a
   constant, so the division leaks nothing).
7. :meth:`~PatientDPOptimizer.step`: the private gradient plus the gradient on generated VUs becomes
   D's gradient; Adam steps; the accountant records one step ``(sigma, q)``.

The gradient on generated VUs needs no noise: generated VUs depend only on G (itself a function of
earlier *privatised* D updates) and on noise drawn from the card's seed, never on the private data of
this step, so it is post-processing in the adaptive composition. It is clipped per VU at the same
``C`` by default (:meth:`~PatientDPOptimizer.public_gradient`, ``clip_generated``): unclipped, it is
orders of magnitude larger than the clipped real side and D learns little but "everything is fake".

``private_layers="heads"`` trains only D's output heads privately and keeps its body as pretrained on
public data (``--init-from``): the noise's norm grows with the square root of the trained parameters,
so 16 k head parameters carry about 7x less noise than D's 710 k.

Randomness of the mechanism (patient sampling, VU choice, Gaussian noise) comes from a generator
seeded with 63 bits of OS entropy (:func:`entropy_generator`), never from the card's seed: whoever
holds the card cannot replay the noise. Its state is kept in the (private) training checkpoint only,
so a resumed run draws what an uninterrupted one would have drawn.

Accounting: Opacus's RDP (or PRV) accountant over ``N_patients`` with sample rate ``q``; delta
defaults to ``min(1e-5, 1 / (10 N_patients))`` and a delta at or above ``1 / N_patients`` is refused.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from synthvu_core.errors import SelectionError

if TYPE_CHECKING:
    import torch

UNIT = "patient"
#: The neighbouring relation the guarantee is stated for (written into every DP card).
NEIGHBOURING = "add or remove one patient (all of that patient's VUs)"
MAX_DELTA = 1e-5
ACCOUNTANTS = ("rdp", "prv")
TUNING = ("public", "private")
#: What of D is trained privately: every layer, or only its output heads (the body stays as pretrained).
PRIVATE_LAYERS = ("all", "heads")


@dataclass
class DPConfig:
    """Settings of patient-level DP-SGD (stored, with what was spent, in the card's ``dp`` block).

    Args:
        target_epsilon: privacy budget; sets the noise multiplier for the run's steps.
        noise_multiplier: a fixed noise multiplier instead (exactly one of the two).
        delta: None = ``min(1e-5, 1 / (10 N_patients))``; must stay below ``1 / N_patients``.
        clip_norm: bound ``C`` on each sampled patient's summed gradient.
        patients_per_step: expected patients per step (None: as many as give ``batch_size`` real VUs).
        vus_per_patient: at most this many VUs of a sampled patient per step (None: all of them).
        accountant: ``rdp`` or ``prv`` (Opacus).
        tuning: ``public`` where hyper-parameters were chosen on public data only, else ``private``.
        private_layers: ``all`` of D, or only its ``heads`` (the body frozen as pretrained on public data:
            the noise then spreads over thousands of parameters instead of hundreds of thousands).
        clip_generated: clip each generated VU's gradient at the clip norm too, so that D's update is not
            dominated by the unclipped generated side while the real side is clipped (no noise needed there).
    """

    target_epsilon: float | None = None
    noise_multiplier: float | None = None
    delta: float | None = None
    clip_norm: float = 1.0
    patients_per_step: float | None = None
    vus_per_patient: int | None = None
    accountant: str = "rdp"
    tuning: str = "public"
    private_layers: str = "all"
    clip_generated: bool = True

    def validate(self) -> None:
        """Raise :class:`SelectionError` for settings that cannot give a guarantee."""
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise SelectionError("differential privacy needs exactly one of --target-epsilon and --noise-multiplier")
        if self.target_epsilon is not None and not (math.isfinite(self.target_epsilon) and self.target_epsilon > 0):
            raise SelectionError(
                f"--target-epsilon must be a finite positive number, got {self.target_epsilon} (epsilon = inf is no "
                "differential privacy: train without --target-epsilon)"
            )
        sigma = self.noise_multiplier
        if sigma is not None and not (math.isfinite(sigma) and sigma > 0):
            raise SelectionError(
                f"--noise-multiplier must be positive, got {self.noise_multiplier} (no noise is no differential "
                "privacy: train without --noise-multiplier)"
            )
        if self.delta is not None and not 0 < self.delta < 1:
            raise SelectionError(f"--delta must lie in (0, 1), got {self.delta}")
        if not self.clip_norm > 0:
            raise SelectionError(f"--clip-norm must be positive, got {self.clip_norm}")
        if self.patients_per_step is not None and not self.patients_per_step > 0:
            raise SelectionError(f"--patients-per-step must be positive, got {self.patients_per_step}")
        if self.vus_per_patient is not None and self.vus_per_patient < 1:
            raise SelectionError(f"--vus-per-patient must be at least 1, got {self.vus_per_patient}")
        if self.accountant not in ACCOUNTANTS:
            raise SelectionError(
                f"unknown privacy accountant {self.accountant!r}; choose one of {', '.join(ACCOUNTANTS)}"
            )
        if self.tuning not in TUNING:
            raise SelectionError(f"--tuning must be one of {', '.join(TUNING)}, got {self.tuning!r}")
        if self.private_layers not in PRIVATE_LAYERS:
            raise SelectionError(
                f"--private-layers must be one of {', '.join(PRIVATE_LAYERS)}, got {self.private_layers!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_delta(n_patients: int) -> float:
    """``min(1e-5, 1 / (10 N_patients))``."""
    return min(MAX_DELTA, 1.0 / (10 * n_patients))


def check_delta(delta: float | None, n_patients: int) -> float:
    """The delta to use: the default where None; :class:`SelectionError` above :func:`default_delta`, the design's
    bound ``min(1e-5, 1 / (10 N_patients))``: delta must lie well below ``1 / N_patients``, near which a guarantee
    allows releasing a whole patient."""
    if n_patients < 1:
        raise SelectionError("differential privacy needs at least one train patient")
    most = default_delta(n_patients)
    if delta is None:
        return most
    if delta > most * (1 + 1e-9):
        near = "at or above" if delta >= 1.0 / n_patients else "not well below"
        raise SelectionError(
            f"delta {delta:g} is {near} 1/N_patients = {1 / n_patients:.3g} (such a guarantee may allow releasing a "
            f"whole patient); use delta <= min(1e-5, 1/(10 N_patients)) = {most:.3g}"
        )
    return float(delta)


def os_entropy_seed() -> int:
    """63 bits from the operating system's entropy source."""
    return int.from_bytes(os.urandom(8), "little") >> 1


def entropy_generator() -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from OS entropy (the mechanism's randomness)."""
    import torch

    return torch.Generator().manual_seed(os_entropy_seed())


def clipped_sum(per_patient: dict[str, torch.Tensor], clip_norm: float) -> dict[str, torch.Tensor]:
    """Sum over patients of each patient's gradient scaled to norm at most ``clip_norm``.

    Args:
        per_patient: parameter name -> ``[P, *shape]`` summed gradient of each of ``P`` patients.
        clip_norm: the bound ``C``; the result changes by at most ``C`` when one patient is removed.
    """
    import torch

    if not per_patient:
        return {}
    first = next(iter(per_patient.values()))
    n = first.shape[0]
    norms = torch.stack([g.reshape(n, -1).norm(dim=1) for g in per_patient.values()], 1).norm(dim=1)
    factor = (clip_norm / (norms + 1e-6)).clamp(max=1.0)
    return {k: torch.einsum("p,p...->...", factor.to(g.dtype), g) for k, g in per_patient.items()}


class PatientDPOptimizer:
    """DP-SGD over patients for a discriminator ``module`` trained by ``optimizer``.

    Args:
        module: the discriminator (plain ``nn.Module``: per-sample normalisation only, e.g. GroupNorm).
        optimizer: its optimizer (Adam).
        patient_of_vu: ``[N_vu]`` integer patient index (0 .. N_patients - 1) of every train VU.
        config: the DP settings (validated).
        expected_vus: expected real VUs per step (the constant the noisy sum is divided by).
        sample_rate: ``q``, each patient's probability of being sampled in a step.
        noise_multiplier: ``sigma``.
        generator: the mechanism's random source (:func:`entropy_generator`).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        patient_of_vu: torch.Tensor,
        config: DPConfig,
        expected_vus: float,
        sample_rate: float,
        noise_multiplier: float,
        generator: torch.Generator,
    ):
        import torch
        from opacus.accountants import PRVAccountant, RDPAccountant

        self.module, self.optimizer, self.config = module, optimizer, config
        self.patient_of_vu = patient_of_vu.cpu().long()
        self.n_patients = int(self.patient_of_vu.max()) + 1
        order = torch.argsort(self.patient_of_vu, stable=True)
        counts = torch.bincount(self.patient_of_vu, minlength=self.n_patients)
        self.vus_of_patient = list(torch.split(order, counts.tolist()))
        self.expected_vus = float(expected_vus)
        self.sample_rate = float(sample_rate)
        self.noise_multiplier = float(noise_multiplier)
        self.generator = generator
        self.accountant = RDPAccountant() if config.accountant == "rdp" else PRVAccountant()
        #: the context of D's forward in the per-VU call (e.g. bf16 autocast); its outputs are cast to float32
        self.autocast: Callable[[], Any] = contextlib.nullcontext

    # ---- 1. sampling ----------------------------------------------------------------------
    def sample_patients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Poisson-sample patients; return ``(vu_indices, patient_position)`` of the real batch.

        ``patient_position[i]`` numbers the sampled patient (0 .. P - 1) that VU ``vu_indices[i]`` belongs to.
        """
        import torch

        chosen = torch.nonzero(torch.rand(self.n_patients, generator=self.generator) < self.sample_rate).flatten()
        k = self.config.vus_per_patient
        vus, pos = [], []
        for j, p in enumerate(chosen.tolist()):
            mine = self.vus_of_patient[p]
            if k is not None and len(mine) > k:
                mine = mine[torch.randperm(len(mine), generator=self.generator)[:k]]
            vus.append(mine)
            pos.append(torch.full((len(mine),), j, dtype=torch.long))
        if not vus:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
        return torch.cat(vus), torch.cat(pos)

    # ---- 2. per-VU gradients ------------------------------------------------------------------
    def per_vu_gradients(
        self, loss_of_one: Callable[..., torch.Tensor], *inputs: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Gradient of ``loss_of_one(output_of_D_on_one_VU, *rest)`` for every VU: name -> ``[n, *shape]``.

        Args:
            loss_of_one: ``(adv [1], cls [1, K], *rest_of_one) -> scalar``.
            inputs: ``x [n, C, H, W]`` then further per-VU tensors, batched on dim 0; the first of them (the
                labels) is D's second input too (a projection discriminator judges each VU against its own
                label; a D without one ignores it), so a VU's label enters only its own gradient.
        """
        from torch.func import functional_call, grad, vmap

        params = {k: v.detach() for k, v in self.trainable()}
        fixed = {k: v.detach() for k, v in self.module.named_parameters() if not v.requires_grad}
        buffers = {k: v.detach() for k, v in self.module.named_buffers()}

        def one(p: dict[str, torch.Tensor], x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
            one_rest = tuple(r.unsqueeze(0) for r in rest)
            with self.autocast():
                adv, cls = functional_call(self.module, (p, fixed, buffers), (x.unsqueeze(0), *one_rest[:1]))
            return loss_of_one(adv.float(), cls.float(), *one_rest)

        in_dims = (None,) + (0,) * len(inputs)
        return vmap(grad(one), in_dims=in_dims, randomness="error")(params, *inputs)

    # ---- 3. per-patient sums ---------------------------------------------------------------------
    @staticmethod
    def sum_per_patient(per_vu: dict[str, torch.Tensor], position: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
        """Sum per-VU gradients over each sampled patient: name -> ``[n, *shape]``."""
        import torch

        out = {}
        for k, g in per_vu.items():
            out[k] = torch.zeros((n, *g.shape[1:]), dtype=g.dtype, device=g.device).index_add_(
                0, position.to(g.device), g
            )
        return out

    # ---- 4. clipping ------------------------------------------------------------------------------
    def clip(self, per_patient: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each patient's gradient clipped to the clip norm, summed over patients."""
        summed = clipped_sum(per_patient, self.config.clip_norm)
        if not summed:  # no patient sampled: the sum is zero
            summed = {k: v.detach().new_zeros(v.shape) for k, v in self.trainable()}
        return summed

    # ---- 5. noise ---------------------------------------------------------------------------------
    def add_noise(self, summed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Add ``N(0, (sigma C)^2)`` noise from the mechanism's generator to every coordinate."""
        import torch

        std = self.noise_multiplier * self.config.clip_norm
        out = {}
        for k, g in summed.items():
            noise = (
                torch.normal(0.0, std, size=tuple(g.shape), generator=self.generator)
                if std > 0
                else torch.zeros(g.shape)
            )
            out[k] = g + noise.to(device=g.device, dtype=g.dtype)
        return out

    # ---- 6. scaling -------------------------------------------------------------------------------
    def scale(self, noisy: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Divide by the expected number of real VUs per step (a public constant)."""
        return {k: g / self.expected_vus for k, g in noisy.items()}

    # ---- 7. update and accounting -------------------------------------------------------------------
    def step(self, private_grad: dict[str, torch.Tensor], public_grad: dict[str, torch.Tensor] | None = None) -> None:
        """Set D's gradient to the private one (plus the generated VUs' one), step, and account."""
        import torch

        for k, p in self.trainable():
            g = private_grad[k]
            if public_grad is not None and public_grad.get(k) is not None:
                g = g + public_grad[k]
            # in the parameter's own memory layout: a fused optimizer reads grad and parameter storage alike
            p.grad = torch.empty_like(p).copy_(g.detach())
        self.optimizer.step()
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)

    def private_gradient(
        self, loss_of_one: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor, position: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Steps 2-6 on a sampled real batch: the privatised, scaled gradient of D's real-VU loss."""
        n = int(position.max()) + 1 if len(position) else 0
        per_patient = self.sum_per_patient(self.per_vu_gradients(loss_of_one, x, y), position, n) if n else {}
        return self.scale(self.add_noise(self.clip(per_patient)))

    def public_gradient(
        self, loss_of_one: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor, divisor: float
    ) -> dict[str, torch.Tensor]:
        """D's gradient on generated VUs, each VU's clipped at the clip norm (no noise: they are public),
        summed and divided by ``divisor`` (the generated batch size): on the same scale as the private side."""
        per_vu = self.per_vu_gradients(loss_of_one, x, y)
        return {k: g / divisor for k, g in clipped_sum(per_vu, self.config.clip_norm).items()}

    def trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        """D's parameters that the private update trains (``requires_grad``); the others stay fixed."""
        return [(k, p) for k, p in self.module.named_parameters() if p.requires_grad]

    def epsilon(self, delta: float) -> float:
        """Epsilon spent so far at ``delta`` (0 before the first step)."""
        if not self.accountant.history:
            return 0.0
        return float(self.accountant.get_epsilon(delta=delta))


def noise_for(target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """Opacus's noise multiplier that spends ``target_epsilon`` at ``delta`` in ``steps`` steps of rate
    ``sample_rate``."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(
        get_noise_multiplier(
            target_epsilon=target_epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=accountant,
        )
    )
