"""The CRNN: recipe size and shapes, weak pooling, upstream weight parity, small configs, fast dropout."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from sedwatt.config import load_config
from sedwatt.errors import SedwattError
from sedwatt.model import build_crnn, count_parameters, load_upstream_state_dict
from sedwatt.model.dropout import FastDropout, half_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from upstream_reference import UpstreamCRNN  # noqa: E402


def test_recipe_model_size_and_shapes():
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "dcase2022.yaml")
    model = build_crnn(cfg).eval()
    assert count_parameters(model) == 1_112_420
    strong, weak = model(torch.rand(2, 128, 626))
    assert strong.shape == (2, 10, 156) and weak.shape == (2, 10)
    assert torch.all((strong > 0) & (strong < 1))


def test_weak_is_attention_pooled_over_time_with_a_class_softmax():
    torch.manual_seed(0)
    model = build_crnn(load_config(None, ["model.channels=[4,4]", "model.pools=[[2,2],[2,2]]", "features.n_mels=8",
                                          "model.rnn_hidden=4"])).eval()  # fmt: skip
    x = torch.rand(1, 8, 20)
    captured = {}
    model.rnn.register_forward_hook(lambda m, i, o: captured.update(h=o[0]))
    strong, weak = model(x)
    h = captured["h"][0]  # [T, 2H]
    s = torch.sigmoid(h @ model.dense.weight.T + model.dense.bias)  # [T, C]
    a = torch.softmax(h @ model.dense_softmax.weight.T + model.dense_softmax.bias, dim=1).clamp(1e-7, 1)
    expected = (s * a).sum(0) / a.sum(0)
    torch.testing.assert_close(weak[0], expected)
    torch.testing.assert_close(strong[0], s.T)


def _randomised_upstream(config) -> UpstreamCRNN:
    torch.manual_seed(1)
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


@pytest.mark.parametrize("which", ["plain", "lightning"])
def test_upstream_weights_give_the_same_outputs(which):
    cfg = load_config()
    up = _randomised_upstream(cfg)
    state = up.state_dict()
    if which == "lightning":
        state = {"state_dict": {**{f"sed_student.{k}": v for k, v in state.items()},
                                **{f"sed_teacher.{k}": torch.zeros_like(v) for k, v in state.items()}}}  # fmt: skip
    ours = load_upstream_state_dict(build_crnn(cfg), state).eval()
    x = torch.rand(2, 128, 626)
    with torch.no_grad():
        s_up, w_up = up(x)
        s, w = ours(x)
    torch.testing.assert_close(s, s_up, atol=1e-5, rtol=0)
    torch.testing.assert_close(w, w_up, atol=1e-5, rtol=0)


def test_upstream_mapping_errors_name_the_key():
    cfg = load_config()
    state = UpstreamCRNN.from_config(cfg).state_dict()
    with pytest.raises(SedwattError, match="unexpected key 'cnn.cnn.extra.weight'"):
        load_upstream_state_dict(build_crnn(cfg), {**state, "cnn.cnn.extra.weight": torch.zeros(1)})
    del state["dense.bias"]
    with pytest.raises(SedwattError, match="dense.bias"):
        load_upstream_state_dict(build_crnn(cfg), state)
    small = load_config(None, ["model.channels=[8,16]", "model.pools=[[2,2],[2,64]]"])
    with pytest.raises(SedwattError, match="shape"):
        load_upstream_state_dict(build_crnn(small), UpstreamCRNN.from_config(cfg).state_dict())


def test_small_config_builds_and_runs():
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "cpu_demo.yaml")
    model = build_crnn(cfg)
    strong, weak = model(torch.rand(3, cfg.features.n_mels, cfg.n_feature_frames))
    assert strong.shape == (3, 10, cfg.n_label_frames) and weak.shape == (3, 10)
    assert count_parameters(model) < 1_112_420


def test_same_seed_same_init_as_upstream():
    cfg = load_config()
    torch.manual_seed(7)
    ours = build_crnn(cfg)
    torch.manual_seed(7)
    up = UpstreamCRNN.from_config(cfg)
    mapped = load_upstream_state_dict(build_crnn(cfg), up.state_dict())
    for (k, a), b in zip(ours.state_dict().items(), mapped.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_fast_dropout_statistics():
    torch.manual_seed(0)
    mask = half_mask(torch.Size([400, 1000]), torch.device("cpu")).float()
    n = mask.numel()
    rate = mask.mean().item()
    assert abs(rate - 0.5) < 4 * (0.25 / n) ** 0.5  # within 4 binomial standard deviations
    # neighbours (same byte and across bytes) and bit positions are uncorrelated
    flat = mask.flatten() * 2 - 1
    for lag in (1, 7, 8, 9, 1000):
        corr = (flat[:-lag] * flat[lag:]).mean().item()
        assert abs(corr) < 4 / n**0.5, lag
    bits = mask.flatten()[: n - n % 8].view(-1, 8)
    per_bit = bits.mean(0)
    assert torch.all((per_bit - 0.5).abs() < 4 * (0.25 / bits.shape[0]) ** 0.5)
    corr_bits = torch.corrcoef(bits.T * 2 - 1)
    off_diag = corr_bits[~torch.eye(8, dtype=torch.bool)]
    assert off_diag.abs().max() < 4 / bits.shape[0] ** 0.5
    # reproducible under a seed
    torch.manual_seed(0)
    assert torch.equal(half_mask(torch.Size([400, 1000]), torch.device("cpu")).float(), mask)


def test_fast_dropout_scales_and_backpropagates_through_the_mask():
    drop = FastDropout().train()
    x = torch.ones(64, 64, requires_grad=True)
    y = drop(x)
    assert set(torch.unique(y).tolist()) <= {0.0, 2.0}
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # gradient = mask × 2, the same mask as forward
    assert torch.equal(drop.eval()(x), x)


def test_torch_dropout_path_is_the_upstream_behaviour():
    cfg = load_config()
    up = UpstreamCRNN.from_config(cfg)
    ours = load_upstream_state_dict(build_crnn(cfg), up.state_dict())
    up.train()
    ours.train()
    x = torch.rand(2, 128, 313)
    torch.manual_seed(3)
    s_up, w_up = up(x)
    torch.manual_seed(3)
    s, w = ours(x)
    torch.testing.assert_close(s, s_up, atol=1e-5, rtol=0)
    torch.testing.assert_close(w, w_up, atol=1e-5, rtol=0)
