"""Pre-synaptic trace and eligibility trace against their closed forms; the two implementations agree."""

import math

import pytest
import torch

pytest.importorskip("norse")

from spiking_rhm.backends.norse.traces import (  # noqa: E402
    EligibilityParameters,
    FactoredEligibility,
    PreTraceParameters,
    PreTraceState,
    SurrogateParameters,
    EligibilityState,
    SynapseEligibility,
    decay_factor,
    eligibility_scale,
    eligibility_step,
    pre_trace_step,
    surrogate_derivative,
)

pytestmark = pytest.mark.norse
DT = 1e-3


def test_pre_trace_closed_form():
    p = PreTraceParameters(1 / 7e-3)
    a = math.exp(-DT / 7e-3)
    spikes = torch.zeros(40)
    spikes[[0, 3, 4, 20]] = 1
    state = PreTraceState(torch.zeros(()))
    for t in range(40):
        x, state = pre_trace_step(spikes[t], state, p, DT)
        closed = sum((1 - a) * a ** (t - s) for s in range(t + 1) if spikes[s])
        assert float(x) == pytest.approx(closed, rel=1e-5, abs=1e-9)


def test_surrogate_is_superspike():
    p = SurrogateParameters(v_th=1.0, beta=4.0)
    v = torch.tensor([1.0, 1.5, 0.0, -1.0])
    assert torch.allclose(surrogate_derivative(v, p), 1 / (1 + 4 * (v - 1).abs()) ** 2)


@pytest.mark.parametrize("cls", [SynapseEligibility, FactoredEligibility])
def test_eligibility_closed_form_for_known_spike_train(cls):
    """e(t) = (1-k) sum_{t'<=t} k^{t-t'} g(t') psi(t') xbar(t') for a known train, with a plastic gate."""
    tau_pre, tau_e = 5e-3, 12e-3
    a, k = math.exp(-DT / tau_pre), math.exp(-DT / tau_e)
    T = 30
    z_pre = torch.zeros(T)
    z_pre[[1, 2, 8, 15, 16]] = 1
    v_post = torch.linspace(0.2, 1.4, T)  # a ramp crossing threshold
    plastic = [t < 20 for t in range(T)]
    psi_p = SurrogateParameters(1.0, 3.0)
    elig = cls(EligibilityParameters(1 / tau_e), DT)
    state = PreTraceState(torch.zeros(1, 1, 1))
    for t in range(T):
        xbar, state = pre_trace_step(z_pre[t].view(1, 1, 1), state, PreTraceParameters(1 / tau_pre), DT)
        elig.step(surrogate_derivative(v_post[t].view(1, 1, 1), psi_p), xbar, plastic[t])
    xbar_closed = [sum((1 - a) * a ** (t - s) * float(z_pre[s]) for s in range(t + 1)) for t in range(T)]
    psi_closed = [1 / (1 + 3 * abs(float(v_post[t]) - 1)) ** 2 for t in range(T)]
    e_closed = sum((1 - k) * k ** (T - 1 - t) * psi_closed[t] * xbar_closed[t] for t in range(T) if plastic[t])
    assert e_closed > 0.01
    assert float(elig.value().squeeze()) == pytest.approx(e_closed, rel=1e-5)


@pytest.mark.parametrize("shared", [True, False])
def test_factored_equals_synapse_trace(gen, shared):
    B, P, H, K = 3, 2, 5, 4
    p = EligibilityParameters(1 / 8e-3)
    a, b = SynapseEligibility(p, DT), FactoredEligibility(p, DT)
    for t in range(25):
        psi = torch.rand((B, P, H), generator=gen, dtype=torch.float64)
        pre = torch.rand((B, P, K), generator=gen, dtype=torch.float64)
        plastic = t % 7 != 3
        a.step(psi, pre, plastic)
        b.step(psi, pre, plastic)
    a.decay(6)
    b.decay(6)
    L = torch.randn((B, P, H), generator=gen, dtype=torch.float64)  # position-dependent signal
    assert torch.allclose(a.value(), b.value())
    assert torch.allclose(a.contract(L, shared), b.contract(L, shared))
    # the per-position trace is what a position-dependent signal needs: sum over p of L_p e_p
    expected = torch.einsum("bph,bphk->phk", L, a.value())
    assert torch.allclose(a.contract(L, shared), expected.sum(0) if shared else expected)
    if shared:  # summing e over positions before the signal arrives would give another number
        assert not torch.allclose(expected.sum(0), torch.einsum("bh,bhk->hk", L.mean(1), a.value().sum(1)))


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_synapse_trace_equals_stepped_equation_across_rescaling(gen, dtype, rtol):
    """SynapseEligibility keeps e / k^n and k^n: it equals e stepped by eligibility_step (k e + (1-k) psi xbar),
    also across delays long enough that k^n is folded back into the stored tensor, and contracts the same."""
    B, P, H, K = 3, 2, 5, 4
    p = EligibilityParameters(1 / 8e-3)
    elig = SynapseEligibility(p, DT)
    state = EligibilityState(torch.zeros(B, P, H, K, dtype=dtype))
    k = decay_factor(p.tau_elig_inv, DT)
    folds = 0
    for t in range(260):
        scale = elig._scale
        if t in (40, 150):  # silent stretches: k^n passes RESCALE_BELOW (k^120 ~ 3e-7)
            elig.decay(120)
            state = EligibilityState(state.e * k**120)
            torch.testing.assert_close(elig.value(), state.e, rtol=rtol, atol=0)
        psi = torch.rand((B, P, H), generator=gen, dtype=torch.float64).to(dtype)
        pre = torch.rand((B, P, K), generator=gen, dtype=torch.float64).to(dtype)
        plastic = t % 5 != 2
        elig.step(psi, pre, plastic)
        _, state = eligibility_step(psi, pre, state, p, DT, plastic)
        folds += elig._scale > scale  # k^n only shrinks unless folded back
        if t % 37 == 0 or t == 259:
            torch.testing.assert_close(elig.value(), state.e, rtol=rtol, atol=0)
            L = torch.randn((B, P, H), generator=gen, dtype=torch.float64).to(dtype)
            for shared in (True, False):
                want = torch.einsum("bph,bphk->phk", L, state.e)
                torch.testing.assert_close(elig.contract(L, shared), want.sum(0) if shared else want,
                                           rtol=10 * rtol, atol=0)
    assert folds >= 2  # the fold-back path ran


@pytest.mark.parametrize("cls", [SynapseEligibility, FactoredEligibility])
def test_expected_eligibility_closed_form(cls):
    """A pre neuron firing every step (rho = 1) onto psi = c: e = c sum_plastic (1-k) k^age (1 - a^{t+1}) = ebar."""
    tau_pre, tau_e, T, c = 6e-3, 9e-3, 12, 0.3
    a, k = math.exp(-DT / tau_pre), math.exp(-DT / tau_e)
    elig = cls(EligibilityParameters(1 / tau_e), DT, PreTraceParameters(1 / tau_pre))
    state = PreTraceState(torch.zeros(2, 1, 3, dtype=torch.float64))
    for t in range(T):
        xbar, state = pre_trace_step(torch.ones(2, 1, 3, dtype=torch.float64), state, PreTraceParameters(1 / tau_pre), DT)
        elig.step(torch.full((2, 1, 4), c, dtype=torch.float64), xbar, plastic=True)
    closed = c * sum((1 - k) * k ** (T - 1 - t) * (1 - a ** (t + 1)) for t in range(T))
    assert float(elig.expected_value()) == pytest.approx(closed, rel=1e-9)
    assert torch.allclose(elig.value(), torch.full((2, 1, 4, 3), closed, dtype=torch.float64))
    elig.decay(7)  # the delay decays e but not ebar: the normalisation keeps the cost of the delay
    assert float(elig.expected_value()) == pytest.approx(closed, rel=1e-9)
    assert torch.allclose(elig.value(), torch.full((2, 1, 4, 3), closed * k**7, dtype=torch.float64))


def test_expected_eligibility_is_the_mean_trace_of_random_nominal_rate_inputs(gen):
    """Bernoulli(rho) pre spikes (trace / rho) onto random psi: the population mean of e matches ebar."""
    B, T, rho = 40_000, 15, 0.2
    pre_p, p = PreTraceParameters(1 / 8e-3), EligibilityParameters(1 / 15e-3)
    elig = SynapseEligibility(p, DT, pre_p)
    state = PreTraceState(torch.zeros(B, 1, 1, dtype=torch.float64))
    for t in range(T):
        z = (torch.rand((B, 1, 1), generator=gen, dtype=torch.float64) < rho).double()
        xbar, state = pre_trace_step(z, state, pre_p, DT)
        psi = torch.rand((B, 1, 1), generator=gen, dtype=torch.float64)
        elig.step(psi, xbar / rho, plastic=True)
    assert float(elig.value().mean()) == pytest.approx(float(elig.expected_value()), rel=0.02)
    # the expected scale: the normalised trace has mean f_active (here 0.5)
    scale = eligibility_scale("expected").factor(elig, torch.tensor(0.5, dtype=torch.float64))
    assert float((elig.value() * scale).mean()) == pytest.approx(0.5, rel=0.02)
    assert eligibility_scale("none").factor(elig, 0.5) == 1.0
