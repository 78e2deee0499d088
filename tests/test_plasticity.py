"""The plasticity core: grad W = c contract(L, e) / sqrt(K), its scales and the learning context."""

import math

import pytest
import torch

from spiking_rhm.errors import ConfigError
from spiking_rhm.plasticity import RateEligibility, combine, eligibility_scale, learning_context
from spiking_rhm.rules import get_rule


def test_rate_eligibility_contracts_to_the_materialised_trace(gen):
    B, P, H, K = 3, 4, 5, 6
    psi, pre, L = torch.rand(B, P, H, generator=gen), torch.randn(B, P, K, generator=gen), torch.randn(B, H, P,
                                                                                                       generator=gen)
    e = psi[..., None] * pre[..., None, :]  # e_bphk, formed explicitly
    for shared, want in ((True, torch.einsum("bph,bphk->hk", L.transpose(1, 2), e)),
                         (False, torch.einsum("bph,bphk->phk", L.transpose(1, 2), e))):
        (got,) = combine([L], [RateEligibility(psi, pre)], [K], shared)
        torch.testing.assert_close(got, want / math.sqrt(K))


def test_per_sample_contraction_is_each_sample_alone_and_sums_to_the_batch(gen):
    B, P, H, K = 3, 4, 5, 6
    psi, pre, L = torch.rand(B, P, H, generator=gen), torch.randn(B, P, K, generator=gen), torch.randn(B, P, H,
                                                                                                       generator=gen)
    e = RateEligibility(psi, pre)
    for shared in (True, False):
        per = e.contract_samples(L, shared)
        assert per.shape[0] == B
        torch.testing.assert_close(per.sum(0), e.contract(L, shared))
        for b in range(B):  # a batch of one sample
            torch.testing.assert_close(per[b], RateEligibility(psi[b:b + 1], pre[b:b + 1]).contract(L[b:b + 1], shared))


def test_per_sample_inner_products_equal_those_of_the_formed_per_sample_updates(gen):
    B, P, H, K = 3, 4, 5, 6
    psi, pre = torch.rand(B, P, H, generator=gen), torch.randn(B, P, K, generator=gen)
    La, Lb = torch.randn(B, P, H, generator=gen), torch.randn(B, P, H, generator=gen)
    psi[1] = 0  # a sample without any update
    e = RateEligibility(psi, pre)
    for shared in (True, False):
        a, b = e.contract_samples(La, shared).double(), e.contract_samples(Lb, shared).double()
        for (x, y), got in (((a, b), e.sample_inner(La, Lb, shared)), ((a, a), e.sample_inner(La, La, shared))):
            assert got.shape == (B,) and got[1] == 0
            torch.testing.assert_close(got, (x * y).reshape(B, -1).sum(1), rtol=1e-6, atol=1e-9)


def test_expected_scale_normalises_by_ebar_and_refuses_an_unaccumulated_trace():
    assert eligibility_scale("expected").factor(0.25, 0.5) == 2.0
    assert eligibility_scale("expected").factor(0.0, 0.5) == 0.0
    assert eligibility_scale("none").factor(0.25, 0.5) == 1.0
    with pytest.raises(ConfigError, match="plastic window"):
        eligibility_scale("expected").factor(float("nan"), 0.5)
    with pytest.raises(ConfigError, match="unknown eligibility_scale 'x'"):
        eligibility_scale("x")
    with pytest.raises(ConfigError, match="active fractions"):
        combine([torch.zeros(1, 1, 1)], [RateEligibility(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1))], [1], True,
                scale="expected")


def test_context_computes_optional_fields_only_when_the_rule_needs_them():
    calls = []

    def signals():
        calls.append(1)
        return ["bp"]

    h = [torch.zeros(1, 2, 1)]
    ctx = learning_context(get_rule("dfa"), h, None, None, bp_signals=signals, pre_activations=h)
    assert ctx.bp_signals is None and ctx.pre_activations is h and not calls
    ctx = learning_context(get_rule("bp"), h, None, None, bp_signals=signals)
    assert ctx.bp_signals == ["bp"] and calls == [1]
