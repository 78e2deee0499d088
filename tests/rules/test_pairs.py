"""Pair constructions and scorings of the layer-wise self-supervised rules."""

import pytest
import torch

from spiking_rhm.errors import ConfigError, SpikingRHMError
from spiking_rhm.rules.pairs import (
    PAIR_MODES,
    SCORINGS,
    MaskPairs,
    ResamplePairs,
    SiblingPairs,
    _group_size,
    get_pair_mode,
    get_scoring,
)

OPTIONS = {"mask_fraction": 0.5}
SHAPES = [(6, 8), (5, 4), (4, 2), (3, 1)]  # a CNN with s = 2, L = 4


def _info(mode, shapes, l, seed=0):
    return mode.layer_info(shapes, l, torch.Generator().manual_seed(seed), OPTIONS)


@pytest.mark.parametrize("name", sorted(PAIR_MODES))
@pytest.mark.parametrize("l", [1, 2, 4])
def test_targets_partition_the_layer(name, l):
    """Every unit of h is a target exactly once: assemble(targets(h)) == h and ones map to ones."""
    mode = get_pair_mode(name)
    info = _info(mode, SHAPES, l)
    H, P = SHAPES[l - 1]
    h = torch.randn(3, H, P, dtype=torch.float64)
    parts = mode.targets(h, info)
    assert torch.equal(mode.assemble(parts, info, h.shape), h)
    ones = mode.assemble([torch.ones_like(p) for p in parts], info, h.shape)
    assert torch.equal(ones, torch.ones_like(h))
    assert sum(p.numel() for p in parts) == h.numel()


def test_sibling_contexts_are_the_other_children():
    mode = SiblingPairs()
    info = _info(mode, SHAPES, 1)
    assert info["group"] == 2
    h = torch.arange(2 * 6 * 8, dtype=torch.float64).reshape(2, 6, 8)
    layers = [h, torch.zeros(2, 5, 4), torch.zeros(2, 4, 2), torch.zeros(2, 3, 1)]
    t0, t1 = mode.targets(h, info)
    c0, c1 = mode.contexts(layers, None, 1, info)
    assert torch.equal(t0, h[..., [0, 2, 4, 6]]) and torch.equal(t1, h[..., [1, 3, 5, 7]])
    assert torch.equal(c0, t1) and torch.equal(c1, t0)  # the sibling under the same parent
    assert not c0.requires_grad


def test_sibling_group_of_three():
    shapes = [(4, 9), (4, 3), (4, 1)]
    mode = SiblingPairs()
    info = _info(mode, shapes, 1)
    assert info["group"] == 3
    h = torch.randn(2, 4, 9)
    c = mode.contexts([h, torch.zeros(2, 4, 3), torch.zeros(2, 4, 1)], None, 1, info)
    assert [x.shape for x in c] == [torch.Size([2, 8, 3])] * 3
    assert torch.equal(c[0], torch.cat([h[..., 1::3], h[..., 2::3]], dim=1))
    assert torch.equal(c[2], torch.cat([h[..., 0::3], h[..., 1::3]], dim=1))


def test_group_size_inference():
    positions = [p for _, p in SHAPES]
    assert [_group_size(positions, l) for l in (1, 2, 3, 4)] == [2, 2, 2, None]
    assert _group_size([1, 1], 1) is None  # dense layers
    assert _group_size([4], 1) is None  # a single layer gives no parent structure
    assert _group_size([6, 3, 1], 2) == 3  # top-most multi-position layer: its own children


def test_sibling_falls_back_to_mask_on_single_position_layers():
    sib, mask = SiblingPairs(), MaskPairs()
    info_s, info_m = _info(sib, SHAPES, 4, seed=3), _info(mask, SHAPES, 4, seed=3)
    assert info_s["group"] is None
    h = torch.randn(2, 3, 1)
    for a, b in zip(sib.targets(h, info_s), mask.targets(h, info_m)):
        assert torch.equal(a, b)


def test_mask_parts_are_complementary_and_seeded():
    mode = MaskPairs()
    a, b = _info(mode, SHAPES, 1, seed=5)["channels"]
    a2, _ = _info(mode, SHAPES, 1, seed=5)["channels"]
    assert torch.equal(a, a2)
    assert sorted(torch.cat([a, b]).tolist()) == list(range(6)) and len(a) == 3
    h = torch.randn(2, 6, 8)
    layers = [h] + [torch.zeros(2, H, P) for H, P in SHAPES[1:]]
    c_a, c_b = mode.contexts(layers, None, 1, _info(mode, SHAPES, 1, seed=5))
    assert torch.equal(c_a, h[:, b]) and torch.equal(c_b, h[:, a])
    with pytest.raises(ConfigError, match="non-empty"):
        mode.layer_info([(1, 4)], 1, torch.Generator(), OPTIONS)


def test_resample_levels_and_missing_view():
    mode = ResamplePairs()
    assert mode.positive_view_levels(3, None) == [2, 1, 0]
    assert mode.positive_view_levels(3, 2) == [2, 2, 2]
    assert SiblingPairs().positive_view_levels(3, None) is None
    assert MaskPairs().positive_view_levels(3, None) is None
    for bad in (-1, 4, 1.5, True):
        with pytest.raises(ConfigError, match="resample_level"):
            mode.positive_view_levels(3, bad)
    layers = [torch.zeros(2, H, P) for H, P in SHAPES]
    with pytest.raises(ConfigError, match="positive view"):
        mode.contexts(layers, None, 1, {})
    positive = [torch.randn(2, H, P, requires_grad=True) for H, P in SHAPES]
    (c,) = mode.contexts(layers, positive, 2, {})
    assert torch.equal(c, positive[1]) and not c.requires_grad
    assert mode.uses_grammar and mode.needs_second_view
    assert not SiblingPairs.uses_grammar and not MaskPairs.uses_grammar


@pytest.mark.parametrize("name", sorted(SCORINGS))
@pytest.mark.parametrize("n_context", [5, 1])
def test_scoring_adjoint_is_the_transpose(name, n_context):
    """<sites(t), g> == <t, adjoint(g)> for every t, g (the dot-product test of a linear map)."""
    scoring = get_scoring(name)
    gen = torch.Generator().manual_seed(0)
    t = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64)
    c = torch.randn(3, 2, n_context, generator=gen, dtype=torch.float64)
    t_s, c_s = scoring.sites(t, c)
    assert t_s.shape[0] == c_s.shape[0] == 3 and t_s.shape[2] == c_s.shape[2]
    g = torch.randn(t_s.shape, generator=gen, dtype=torch.float64)
    lhs = (t_s * g).sum()
    rhs = (t * scoring.adjoint(g, t.shape)).sum()
    torch.testing.assert_close(lhs, rhs)


def test_unknown_names_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown pair mode 'views'.*valid: resample, mask, sibling"):
        get_pair_mode("views")
    with pytest.raises(SpikingRHMError, match="unknown scoring 'max'"):
        get_scoring("max")
