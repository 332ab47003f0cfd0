"""The CRNN: recipe size and shapes, weak pooling, upstream weight parity, small configs, both dropout streams."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sedwatt.config import load_config
from sedwatt.errors import SedwattError
from sedwatt.model import (
    Dropout,
    build_crnn,
    count_parameters,
    fast_keep_,
    half_mask,
    load_upstream_state_dict,
)
from sedwatt.model.blocks import gated_drop_pool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from upstream_reference import UpstreamCRNN  # noqa: E402

LAYOUTS = ["model.channels_last=false", "model.channels_last=true"]
SMALL = ["features.n_mels=32", "model.channels=[8,16,32]", "model.pools=[[2,2],[2,2],[1,2]]", "model.rnn_hidden=16"]


def test_recipe_model_size_and_10_s_shapes():
    cfg = load_config(ROOT / "configs" / "dcase2022.yaml")
    model = build_crnn(cfg).eval()
    assert count_parameters(model) == 1_112_420
    assert count_parameters(build_crnn(load_config())) == 1_112_420  # the defaults are the recipe
    with torch.no_grad():
        strong, weak = model(torch.rand(2, 128, cfg.n_feature_frames))
    assert cfg.n_feature_frames == 626
    assert strong.shape == (2, 10, 156) and weak.shape == (2, 10)
    assert torch.all((strong > 0) & (strong < 1)) and torch.all((weak > 0) & (weak < 1))


def test_weak_is_attention_pooled_over_time_with_a_class_softmax():
    torch.manual_seed(0)
    cfg = load_config(None, ["model.channels=[4,4]", "model.pools=[[2,2],[2,2]]", "features.n_mels=8", "model.rnn_hidden=4"])
    model = build_crnn(cfg).eval()
    captured = {}
    model.rnn.register_forward_hook(lambda module, args, out: captured.update(h=out[0]))
    with torch.no_grad():
        strong, weak = model(torch.rand(1, 8, 20))
    h = captured["h"][0]  # [T, 2H]
    s = torch.sigmoid(h @ model.dense.weight.T + model.dense.bias)  # [T, C]
    a = torch.softmax(h @ model.dense_softmax.weight.T + model.dense_softmax.bias, dim=1).clamp(1e-7, 1)
    expected = torch.stack([sum(s[t, c] * a[t, c] for t in range(s.shape[0])) / a[:, c].sum() for c in range(s.shape[1])])
    torch.testing.assert_close(weak[0], expected)
    torch.testing.assert_close(strong[0], s.T)


def _randomised_upstream(config, seed: int = 1) -> UpstreamCRNN:
    """Upstream-structured CRNN with random weights and non-trivial BatchNorm running statistics."""
    torch.manual_seed(seed)
    up = UpstreamCRNN.from_config(config)
    with torch.no_grad():
        for name, buf in up.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.5)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
        for p in up.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return up.eval()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("form", ["plain", "lightning", "checkpoint"])
def test_upstream_weights_give_the_same_outputs(form, layout):
    cfg = load_config(None, [layout])
    up = _randomised_upstream(cfg)
    state = up.state_dict()
    if form != "plain":  # student = upstream's weights, teacher = something else
        other = _randomised_upstream(cfg, seed=2).state_dict()
        state = {**{f"sed_student.{k}": v for k, v in state.items()}, **{f"sed_teacher.{k}": v for k, v in other.items()}}
        state["mel_spec.spectrogram.window"] = torch.ones(4)  # other modules of the Lightning module are ignored
        if form == "checkpoint":
            state = {"epoch": 3, "state_dict": state}
    ours = load_upstream_state_dict(build_crnn(cfg), state).eval()
    x = torch.rand(2, 128, 40)
    with torch.no_grad():
        s_up, w_up = up(x)
        s, w = ours(x)
    torch.testing.assert_close(s, s_up, atol=1e-5, rtol=0)
    torch.testing.assert_close(w, w_up, atol=1e-5, rtol=0)


def test_upstream_teacher_can_be_picked():
    cfg = load_config()
    student, teacher = _randomised_upstream(cfg, 1), _randomised_upstream(cfg, 2)
    state = {**{f"sed_student.{k}": v for k, v in student.state_dict().items()},
             **{f"sed_teacher.{k}": v for k, v in teacher.state_dict().items()}}  # fmt: skip
    ours = load_upstream_state_dict(build_crnn(cfg), state, which="teacher")
    assert torch.equal(ours.cnn[3].glu.linear.weight, teacher.cnn.cnn.glu3.linear.weight)
    assert torch.equal(ours.rnn.weight_hh_l1_reverse, teacher.rnn.rnn.weight_hh_l1_reverse)
    assert torch.equal(ours.cnn[2].bn.running_var, teacher.cnn.cnn.batchnorm2.running_var)


def test_upstream_mapping_errors_name_the_key():
    cfg = load_config()
    state = UpstreamCRNN.from_config(cfg).state_dict()
    with pytest.raises(SedwattError, match="unexpected key 'cnn.cnn.extra.weight'"):
        load_upstream_state_dict(build_crnn(cfg), {**state, "cnn.cnn.extra.weight": torch.zeros(1)})
    with pytest.raises(SedwattError, match="'cnn.cnn.glu7.linear.weight' has no place"):
        load_upstream_state_dict(build_crnn(cfg), {**state, "cnn.cnn.glu7.linear.weight": torch.zeros(1)})
    missing = dict(state)
    del missing["cnn.cnn.glu4.linear.bias"]
    with pytest.raises(SedwattError, match="no value for 'cnn.cnn.glu4.linear.bias'"):
        load_upstream_state_dict(build_crnn(cfg), missing)
    small = load_config(None, ["model.channels=[8,16]", "model.pools=[[2,2],[2,64]]"])
    with pytest.raises(SedwattError, match="'cnn.cnn.conv0.weight' has shape"):
        load_upstream_state_dict(build_crnn(small), state)
    with pytest.raises(SedwattError, match="which='ema'"):
        load_upstream_state_dict(build_crnn(cfg), state, which="ema")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_small_config_builds_trains_and_runs(layout):
    cfg = load_config(None, [*SMALL, layout])
    model = build_crnn(cfg)
    strong, weak = model(torch.rand(2, 32, 50))
    assert strong.shape == (2, 10, 12) and weak.shape == (2, 10)
    (strong.mean() + weak.mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    demo = load_config(ROOT / "configs" / "cpu_demo.yaml")
    strong, weak = build_crnn(demo).eval()(torch.rand(2, demo.features.n_mels, demo.n_feature_frames))
    assert strong.shape == (2, 10, demo.n_label_frames) and weak.shape == (2, 10)


def test_bad_model_configs_are_user_errors():
    with pytest.raises(SedwattError, match="pooled below one frequency bin"):
        build_crnn(load_config(None, ["features.n_mels=64"]))  # 7 frequency poolings of 2 need 128 bands
    with pytest.raises(SedwattError, match=r"conv_dropout 0.3: fast_dropout draws Bernoulli\(0.5\) masks only"):
        build_crnn(load_config(None, ["model.fast_dropout=true", "model.conv_dropout=0.3"]))


def test_same_seed_same_init_as_upstream():
    cfg = load_config()
    torch.manual_seed(7)
    ours = build_crnn(cfg)
    torch.manual_seed(7)
    upstream = UpstreamCRNN.from_config(cfg)
    mapped = load_upstream_state_dict(build_crnn(cfg), upstream.state_dict())
    for (key, a), b in zip(ours.state_dict().items(), mapped.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


@pytest.mark.parametrize("layout", LAYOUTS)
def test_torch_dropout_stream_trains_exactly_like_upstream(layout):
    """fast_dropout off: same masks as upstream's F.dropout under the same seed → same outputs, grads, BN stats."""
    cfg = load_config(None, [layout])
    up = _randomised_upstream(cfg).train()
    ours = load_upstream_state_dict(build_crnn(cfg), up.state_dict()).train()
    x = torch.rand(2, 128, 48)
    results = []
    for model in (up, ours):
        torch.manual_seed(3)
        strong, weak = model(x)
        (strong.square().mean() + weak.mean()).backward()
        results.append((strong, weak))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-5, rtol=0)
    for (name, a), b in zip(up.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)
    for (name, a), b in zip(up.named_buffers(), ours.buffers(), strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5, msg=name)


def test_torch_stream_mask_is_f_dropout_bit_for_bit():
    drop = Dropout(0.5).train()
    x = torch.randn(3, 8, 10, 6)
    upstream_layout = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # where upstream's GLU output lives
    torch.manual_seed(11)
    expected = F.dropout(upstream_layout, 0.5)
    torch.manual_seed(11)
    kept = drop.keep_(x.clone())
    assert torch.equal(kept * 2.0, expected)
    head = torch.randn(2, 7, 12)
    torch.manual_seed(5)
    expected = F.dropout(head, 0.5)
    torch.manual_seed(5)
    assert torch.equal(drop(head), expected)


def test_fast_mask_statistics():
    n_words, n_bits = 4096, 32
    torch.manual_seed(0)
    mask = half_mask((n_bits * n_words,)).float()
    n = mask.numel()
    sigma = (0.25 / n) ** 0.5
    assert abs(mask.mean().item() - 0.5) < 4 * sigma  # keep rate within 4 binomial standard deviations
    signs = mask * 2 - 1
    for lag in (1, 2, 7, 8, 31, 32, 33, n_words - 1, n_words, n_words + 1):  # neighbours, bytes, words, bit planes
        corr = (signs[:-lag] * signs[lag:]).mean().item()
        assert abs(corr) < 4.5 / (n - lag) ** 0.5, lag
    planes = mask.view(n_bits, n_words)  # row k = bit k of every random word
    assert torch.all((planes.mean(1) - 0.5).abs() < 4.5 * (0.25 / n_words) ** 0.5)
    corr_bits = torch.corrcoef(planes * 2 - 1)  # bit k vs bit j of the same words
    assert corr_bits[~torch.eye(n_bits, dtype=torch.bool)].abs().max() < 5 / n_words**0.5
    torch.manual_seed(0)  # torch's generator drives it
    assert torch.equal(half_mask((n,)).float(), mask)
    assert not torch.equal(half_mask((n,)).float(), mask)


def test_fast_mask_is_the_same_whether_built_whole_or_plane_by_plane(monkeypatch):
    import sedwatt.model.dropout as dropout_module

    x = torch.randn(5, 16, 70, 40).contiguous(memory_format=torch.channels_last)  # 224,000 elements
    torch.manual_seed(4)
    by_plane = fast_keep_(x.clone())
    monkeypatch.setattr(dropout_module, "_PLANE_BY_PLANE_WORDS", 1 << 40)
    torch.manual_seed(4)
    whole = fast_keep_(x.clone())
    assert torch.equal(by_plane, whole)
    assert torch.all((whole == 0) | (whole == x))
    assert abs((whole == 0).float().mean().item() - 0.5) < 0.01
    for dtype in (torch.float64, torch.bfloat16):  # the integer view follows the element size
        y = torch.randn(40, 50, dtype=dtype)
        kept = fast_keep_(y.clone())
        assert torch.all((kept == 0) | (kept == y)) and 0.4 < (kept == 0).float().mean().item() < 0.6


def test_fast_head_dropout_scales_and_backpropagates_through_its_mask():
    drop = Dropout(0.5, fast=True).train()
    x = torch.ones(64, 64, requires_grad=True)
    y = drop(x)
    assert set(torch.unique(y).tolist()) <= {0.0, 2.0}
    y.backward(torch.full_like(y, 3.0))
    torch.testing.assert_close(x.grad, 3.0 * y.detach())  # gradient = mask × 2, the forward's mask
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ValueError, match="Bernoulli"):
        Dropout(0.3, fast=True)


def _reference_block(x, weight, bias, keep, pool):
    """The recipe's GLU → dropout → pool in plain torch ops, with a given {0, 1} keep mask."""
    lin = F.linear(x.permute(0, 2, 3, 1), weight, bias).permute(0, 3, 1, 2)
    return F.avg_pool2d(lin * torch.sigmoid(x) * keep * 2.0, pool)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("fast", [False, True])
def test_fused_block_matches_plain_ops_in_value_and_gradient(fast, channels_last):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64)  # 7 frames: the pooling drops the last one
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(4, 4, dtype=torch.float64)
    bias = torch.randn(4, dtype=torch.float64)
    drop = Dropout(0.5, fast=fast).train()
    torch.manual_seed(9)
    keep = drop.keep_(torch.ones_like(x))  # the mask the block will draw after the same seed
    assert 0 < keep.sum() < keep.numel()
    inputs = [t.clone().requires_grad_() for t in (x, weight, bias)]
    torch.manual_seed(9)
    out = gated_drop_pool(*inputs, drop, (2, 2))
    ref_inputs = [t.clone().requires_grad_() for t in (x, weight, bias)]
    expected = _reference_block(*ref_inputs, keep, (2, 2))
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(expected)
    grads = torch.autograd.grad(out, inputs, grad)
    for got, want in zip(grads, torch.autograd.grad(expected, ref_inputs, grad), strict=True):
        torch.testing.assert_close(got, want)

    def seeded(*args):
        torch.manual_seed(9)
        return gated_drop_pool(*args, drop, (2, 2))

    small = [inputs[0][:1, :3, :5, :4].clone(), inputs[1][:3, :3].clone(), inputs[2][:3].clone()]
    if channels_last:
        small[0] = small[0].contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradcheck(seeded, [t.detach().requires_grad_() for t in small])
    with torch.no_grad():  # the in-place no-grad path (teacher) gives the same values
        torch.manual_seed(9)
        torch.testing.assert_close(gated_drop_pool(x.clone(), weight, bias, drop, (2, 2), overwrite_x=True), expected)


def test_fast_dropout_model_is_reproducible_and_differs_from_torch_stream():
    cfg = load_config(None, [*SMALL, "model.fast_dropout=true"])
    torch.manual_seed(0)
    model = build_crnn(cfg).train()
    x = torch.rand(2, 32, 40)
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        outs.append(model(x)[0])
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(model(x)[0], outs[0])  # fresh masks without reseeding
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])
