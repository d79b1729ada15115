"""Speed settings of the AC-GAN step (``--speed``): off = the exact old step; on = within a stated tolerance."""

from __future__ import annotations

import hashlib

import pytest
import torch
from test_training import checkpoint_tensors, fixed_entropy, small, tiny_dataset

from synthvu_core.errors import SelectionError
from synthvu_core.models.dp import DPConfig
from synthvu_core.models.speed import parse_speed
from synthvu_core.models.training import Trainer, config_from_options, train
from tests.kernels import pick

torch.set_num_threads(1)

#: sha256 (first 16 hex) of G, G_ema and D after 3 steps of ``small()`` on ``tiny_dataset()`` (torch 2.13 CPU, one
#: thread), per CPU kernel level of torch: AVX2 taken before the speed settings existed; AVX-512 taken with the code
#: of a later commit whose default step gave the AVX2 digests on an AVX2 CPU (an AMD EPYC); AVX-512 on an Intel Xeon
#: rounds otherwise, taken with the code whose AMD digests are these. The default step must still give these weights
#: bit for bit; another kernel level or vendor rounds differently, so its digests are not these.
OLD_DIGESTS = {
    "AVX2": {"default": "ea5afc587972e271", "pgan": "7a549e063a6ec379", "dp": "b2e0d7357a114731"},
    "AVX512": {"default": "bd90f8c5b75d6484", "pgan": "b23ab3b085064a7a", "dp": "11d9c5f05e6052de"},
    "AVX512 GenuineIntel": {"default": "9ed697beff41e722", "pgan": "a37372b7fa34a379", "dp": "2ee4efa9e75d1be2"},
}
DIGEST_TORCH = "2.13.0+cpu"
same_torch = pytest.mark.skipif(torch.__version__ != DIGEST_TORCH or pick(OLD_DIGESTS) is None,
                                reason=f"digests taken with torch {DIGEST_TORCH} on {', '.join(OLD_DIGESTS)} kernels")
#: Settings that change only the kernels (float32 arithmetic): the 3-step update moves by less than this, relative.
FP32_TOLERANCE = 1e-4  # measured: at most 1.5e-5 (channels-last), 4.6e-6 (fused-adam); DP: 8e-7
#: bf16 autocast: D's gradient at identical weights and inputs, relative error (measured 0.02-0.09 at these widths).
BF16_GRAD_TOLERANCE = 0.15
#: bf16 autocast: the 3-step update of all weights, relative to the float32 one (measured 0.30-0.53; Adam's first
#: steps are about lr x sign(gradient), so a near-zero gradient whose sign bf16 flips counts fully).
BF16_UPDATE_TOLERANCE = 0.75


def digest(tr: Trainer) -> str:
    h = hashlib.sha256()
    for prefix, m in (("G", tr.G), ("G_ema", tr.G_ema), ("D", tr.D)):
        for k, v in m.state_dict().items() if m is not None else ():
            h.update(f"{prefix}.{k}".encode())
            h.update(v.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def stepped(steps: int = 3, **kw) -> Trainer:
    tr = Trainer(tiny_dataset(), "unused", small(steps=steps, **kw))
    for _ in range(steps):
        tr.step()
    return tr


def flat(tr: Trainer) -> torch.Tensor:
    return torch.cat([v.detach().float().reshape(-1) for m in (tr.G, tr.D) for v in m.parameters()])


def update_error(speed: tuple[str, ...], **kw) -> float:
    """``|update(speed) - update(none)| / |update(none)|`` of all of G's and D's weights after 3 steps."""
    init = flat(Trainer(tiny_dataset(), "unused", small(steps=3, **kw)))
    faster = stepped(speed=speed, **kw)
    assert faster.speed.used == list(speed), faster.speed.card()  # each setting ran: none skipped silently
    base, fast = flat(stepped(**kw)), flat(faster)
    return float((fast - base).norm() / (base - init).norm())


@same_torch
@pytest.mark.parametrize("arch", ["default", "pgan"])
def test_default_step_is_unchanged_bit_for_bit(arch):
    assert digest(stepped(arch=arch)) == pick(OLD_DIGESTS)[arch]


@same_torch
def test_default_private_step_is_unchanged_bit_for_bit(monkeypatch):
    fixed_entropy(monkeypatch)
    assert digest(stepped(dp=DPConfig(noise_multiplier=1.0))) == pick(OLD_DIGESTS)["dp"]


@pytest.mark.parametrize("speed", [("channels-last",), ("fused-adam",), ("channels-last", "fused-adam")])
def test_float32_settings_stay_within_tolerance(speed):
    err = update_error(speed)
    assert 0 <= err < FP32_TOLERANCE, err


def test_float32_settings_under_dp_keep_the_gradient_layout(monkeypatch):
    """A fused Adam over channels-last weights needs gradients in the same layout (the DP step sets them)."""
    fixed_entropy(monkeypatch)
    err = update_error(("channels-last", "fused-adam"), dp=DPConfig(noise_multiplier=1.0))
    assert err < FP32_TOLERANCE, err


def test_bf16_gradient_of_d_within_tolerance():
    fp32, bf16 = (Trainer(tiny_dataset(), "unused", small(steps=1, speed=s)) for s in ((), ("bf16",)))
    grads = []
    for tr in (fp32, bf16):
        x = tr.images[:8].float() / 127.5 - 1.0
        tr._d_loss(x, torch.ones(8), tr.labels[:8]).sum().backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in tr.D.parameters()]))
    err = float((grads[1] - grads[0]).norm() / grads[0].norm())
    assert 0 < err < BF16_GRAD_TOLERANCE, err  # > 0: bf16 really ran
    assert all(p.grad.dtype == torch.float32 for p in bf16.D.parameters())


@pytest.mark.parametrize("arch", ["default", "pgan"])
def test_bf16_channels_last_fused_steps_within_tolerance(arch):
    err = update_error(("bf16", "channels-last", "fused-adam"), arch=arch)
    assert 0 < err < BF16_UPDATE_TOLERANCE, err


def test_private_bf16_runs_and_stays_close(monkeypatch):
    fixed_entropy(monkeypatch)
    tr = stepped(dp=DPConfig(noise_multiplier=1.0), speed=("bf16", "fused-adam"))
    assert torch.isfinite(flat(tr)).all() and tr.speed.used == ["bf16", "fused-adam"]
    err = update_error(("bf16",), dp=DPConfig(noise_multiplier=1.0))  # the same noise; measured 0.44
    assert 0 < err < BF16_UPDATE_TOLERANCE, err


def test_compile_is_refused_under_dp():
    with pytest.raises(SelectionError, match="compile is not available under DP"):
        small(dp=DPConfig(noise_multiplier=1.0), speed=("compile",)).validate()
    with pytest.raises(SelectionError, match="compile is not available under DP"):
        config_from_options({"speed": "bf16,compile", "noise_multiplier": 1.0})


def test_unknown_speed_setting_is_refused():
    with pytest.raises(SelectionError, match=r"--speed 'fp8' is not a speed setting \(choose from bf16, "):
        config_from_options({"speed": "bf16,fp8"})
    assert parse_speed("compile, bf16,none") == ("bf16", "compile")
    assert config_from_options({"speed": "fused-adam,channels-last"}).speed == ("channels-last", "fused-adam")
    assert config_from_options({}).speed == ()


def test_card_records_speed_and_resume_is_exact(tmp_path):
    ds, speed = tiny_dataset(), ("channels-last", "fused-adam")
    one = train(ds, tmp_path / "one", small(steps=4, speed=speed), progress=False)
    train(ds, tmp_path / "two", small(steps=2, speed=speed), progress=False)
    two = train(ds, tmp_path / "two", small(steps=4, speed=speed, resume=True), progress=False)
    a, b = checkpoint_tensors(one), checkpoint_tensors(two)
    assert all(torch.equal(a[k], b[k]) for k in a)
    from synthvu_core.models.registry import load_card

    assert load_card(one)["training"]["speed"] == {"used": list(speed)}
    plain = train(ds, tmp_path / "plain", small(steps=1), progress=False)
    assert "speed" not in load_card(plain)["training"]


def test_compile_is_skipped_with_a_message_where_it_cannot_run(monkeypatch, capsys):
    import synthvu_core.models.speed as speed

    monkeypatch.setattr(speed, "compiler_problem", lambda device: "no compiler here (test)")
    tr = stepped(steps=1, speed=("fused-adam", "compile"))
    assert tr.speed.used == ["fused-adam"] and tr.speed.card()["skipped"] == {"compile": "no compiler here (test)"}
    assert "--speed compile skipped: no compiler here (test)" in capsys.readouterr().err


def test_diffusion_refuses_speed():
    from synthvu_core.models.architectures import refuse_foreign

    with pytest.raises(SelectionError, match="--speed applies to the AC-GAN only"):
        refuse_foreign("diffusion", ["speed"])


@pytest.mark.slow
def test_compiled_step_stays_within_tolerance():  # about a minute: the compiler runs on the CPU
    tr = stepped(speed=("compile",))
    if tr.speed.skipped:
        pytest.skip(tr.speed.skipped["compile"])
    assert update_error(("compile",)) < FP32_TOLERANCE  # measured 3.3e-6


def test_speed_given_in_any_order_through_the_python_api():
    tr = Trainer(tiny_dataset(), "unused", small(steps=1, speed=("fused-adam", "channels-last")))
    assert tr.speed.used == ["channels-last", "fused-adam"]
    with pytest.raises(SelectionError, match="--speed 'fast' is not a speed setting"):
        small(speed=("fast",)).validate()
