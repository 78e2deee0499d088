"""Rate networks: shapes, cut graph, explicit updates vs autograd, tied LCN == CNN."""

import pytest
import torch

from rate_models.networks import (
    bp_signals,
    explicit_bias_update,
    explicit_update,
    forward,
    init_params,
    layer_vjp,
    make_spec,
)

DT = torch.float64


def _net(arch, bias=False, v=5, s=2, depth=3, width=7, n_out=4, seed=0):
    d = s**depth
    spec = make_spec(arch, v, d, s, depth, width, n_out, bias)
    params = init_params(spec, torch.Generator().manual_seed(seed), DT)
    for t in (*params.weights, *(b for b in params.biases if b is not None), params.readout):
        t.requires_grad_(True)
    x = torch.nn.functional.one_hot(torch.randint(0, v, (6, d), generator=torch.Generator().manual_seed(seed + 1)),
                                    v).transpose(1, 2).to(DT)
    return spec, params, x


@pytest.mark.parametrize("arch", ["cnn", "lcn", "fcn"])
def test_shapes(arch):
    spec, params, x = _net(arch)
    out, act = forward(params, x)
    assert out.shape == (6, 4)
    for (H, P), a, h in zip(spec.layer_shapes(), act.pre, act.post):
        assert a.shape == h.shape == (6, H, P)
        assert torch.equal(h, torch.relu(a))
    assert spec.layer_shapes() == ([(7, 4), (7, 2), (7, 1)] if arch != "fcn" else [(7, 1)] * 3)


def test_cnn_layer_equation_by_loops():
    """a^1_{j,p} = sum_{t,c} W_{j,(t,c)} x_{c, s p + t} / sqrt(C s), computed by explicit loops."""
    spec, params, x = _net("cnn", bias=True)
    _, act = forward(params, x)
    W, b = params.weights[0].detach(), params.biases[0].detach()
    v, s = spec.v, spec.s
    for p in range(spec.d // s):
        for j in range(spec.width):
            acc = torch.zeros(x.shape[0], dtype=DT)
            for t in range(s):
                for c in range(v):
                    acc += W[j, t * v + c] * x[:, c, s * p + t]
            expected = acc / (v * s) ** 0.5 + 0.1 * b[p, j]
            torch.testing.assert_close(act.pre[0][:, j, p].detach(), expected)


def test_readout_is_mean_field():
    spec, params, x = _net("cnn", depth=2)
    out, act = forward(params, x)
    expected = act.post[-1].mean(-1) @ params.readout / spec.width
    torch.testing.assert_close(out, expected)


def test_lcn_with_tied_weights_equals_cnn():
    spec, params, x = _net("cnn", bias=True)
    lcn_spec = spec._replace(arch="lcn")
    tied = [w.detach().expand(P, *w.shape).clone() for w, P in zip(params.weights, spec.positions[1:])]
    lcn = params._replace(spec=lcn_spec, weights=tuple(tied))
    torch.testing.assert_close(forward(lcn, x)[0], forward(params, x)[0])


@pytest.mark.parametrize("arch", ["cnn", "lcn", "fcn"])
def test_cut_forward_same_values(arch):
    _, params, x = _net(arch)
    out, act = forward(params, x)
    out_c, act_c = forward(params, x, cut=True)
    torch.testing.assert_close(out, out_c)
    for h, hc in zip(act.post, act_c.post):
        torch.testing.assert_close(h, hc)


@pytest.mark.parametrize("arch", ["cnn", "lcn", "fcn"])
@pytest.mark.parametrize("bias", [False, True])
def test_explicit_update_equals_autograd(arch, bias):
    """dW = -sum (L rho'(a)) x pre / sqrt(fan_in) equals -d<L, h^l>/dW^l for random L, every layer."""
    spec, params, x = _net(arch, bias=bias)
    _, act = forward(params, x, cut=True)
    g = torch.Generator().manual_seed(5)
    for l, h in enumerate(act.post, 1):
        L = torch.randn(h.shape, generator=g, dtype=DT)
        inputs = [params.weights[l - 1]] + ([params.biases[l - 1]] if bias else [])
        grads = torch.autograd.grad((L * h).sum(), inputs, retain_graph=True)
        dW = explicit_update(L, act, l, params)
        assert dW.abs().max() > 0
        torch.testing.assert_close(dW, -grads[0], rtol=1e-10, atol=1e-12)
        if bias:
            torch.testing.assert_close(explicit_bias_update(L, act, l), -grads[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("arch", ["cnn", "lcn", "fcn"])
def test_bp_signals_and_vjp_match_end_to_end_autograd(arch):
    _, params, x = _net(arch)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    out, act = forward(params, x)
    loss = torch.nn.functional.cross_entropy(out, y)
    # in the uncut graph h^l (channel-last) is the input of layer l+1, h^L the readout input
    chl = [*act.inputs[1:], act.readout_input]
    expected = [g.transpose(1, 2) for g in torch.autograd.grad(loss, chl, retain_graph=True)]
    full_w = torch.autograd.grad(loss, params.weights)
    out_c, act_c = forward(params, x, cut=True)
    loss_c = torch.nn.functional.cross_entropy(out_c, y)
    signals = bp_signals(loss_c, act_c)
    for s, e in zip(signals, expected):
        torch.testing.assert_close(s, e, rtol=1e-10, atol=1e-14)
    for l in range(1, len(signals) + 1):  # end-to-end weight gradient from the signals and the eligibility
        torch.testing.assert_close(-explicit_update(signals[l - 1], act_c, l, params), full_w[l - 1])
    for l in range(2, len(signals) + 1):  # vjp: signal below = W^T (D * signal above)
        g = signals[l - 1] * (act_c.pre[l - 1] > 0)
        torch.testing.assert_close(layer_vjp(act_c, l, g), signals[l - 2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    spec, params, x = _net("cnn")
    cuda = params._replace(weights=tuple(w.detach().cuda() for w in params.weights), biases=params.biases,
                           readout=params.readout.detach().cuda())
    torch.testing.assert_close(forward(cuda, x.cuda())[0].cpu(), forward(params, x)[0].detach())


@pytest.mark.parametrize("arch, bias", [("cnn", False), ("cnn", True), ("lcn", False), ("fcn", False)])
def test_workspace_gives_the_same_floats_and_reuses_its_buffers(arch, bias):
    """batched_gradients / batched_forward into a Workspace: bitwise the floats of fresh outputs, in the same
    buffers call after call (one set per shape)."""
    from rate_models.networks import Workspace, batched_forward, batched_gradients, trainable

    spec, params, x = _net(arch, bias)
    stacked = [torch.stack([t.detach(), 2 * t.detach()]) for t in trainable(params)]  # two runs
    xs, ys = torch.stack([x, x.flip(0)]), torch.tensor([[0, 1, 2, 3, 0, 1], [3, 2, 1, 0, 3, 2]])
    work = Workspace()
    want = batched_gradients(spec, stacked, xs, ys)
    ptrs = None
    for _ in range(2):
        got = batched_gradients(spec, stacked, xs, ys, work)
        for g, w in zip([*got[0], *got[1:]], [*want[0], *want[1:]]):
            assert torch.equal(g, w)
        if arch != "lcn":  # shared weights: the weight gradients are the workspace's buffers
            now = [g.data_ptr() for g in got[0][:spec.depth]]
            assert ptrs is None or now == ptrs
            ptrs = now
    n_buffers = len(work.buffers)
    assert torch.equal(batched_forward(spec, stacked, xs, work)[0], batched_forward(spec, stacked, xs)[0])
    assert len(work.buffers) == n_buffers  # the same shapes: no new buffers
    batched_forward(spec, stacked, xs[:, :3], work)  # another batch size: its own buffers
    assert len(work.buffers) > n_buffers or arch == "lcn"


def test_workspace_swap_hands_over_buffers():
    from rate_models.networks import Workspace

    work, like = Workspace(), torch.zeros(1)
    a = work.take("g", (2, 3), like)
    mine = torch.ones(2, 3)
    work.swap([a, torch.zeros(4)], [mine, torch.zeros(4)])  # a tensor that is not the workspace's is ignored
    assert work.take("g", (2, 3), like) is mine and len(work.buffers) == 1
