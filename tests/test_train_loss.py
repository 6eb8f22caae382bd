"""The chunked vocabulary loss equals plain cross-entropy over full logits (with the control rows
replacing their columns), in value and in gradients."""

import pytest
import torch

from aspd_local.train.loss import chunked_loss_sum, head_logits


@pytest.mark.parametrize("softcap", [None, 5.0])
@pytest.mark.parametrize("chunk", [3, 64])
def test_chunked_loss_matches_reference(softcap, chunk):
    g = torch.Generator().manual_seed(0)
    N, d, V = 11, 8, 40
    ids = torch.tensor([3, 7, 30])
    W = torch.randn(V, d, generator=g, dtype=torch.float64)
    h = torch.randn(N, d, generator=g, dtype=torch.float64, requires_grad=True)
    rows = torch.randn(3, d, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, V, (N,), generator=g)
    targets[:3] = ids  # some targets are control tokens

    got = chunked_loss_sum(h, W, rows, ids, targets, chunk=chunk, softcap=softcap)
    gh, gr = torch.autograd.grad(got * 2.0, (h, rows))

    h2 = h.detach().clone().requires_grad_(True)
    r2 = rows.detach().clone().requires_grad_(True)
    Wfull = torch.cat([W[:3], r2[:1], W[4:7], r2[1:2], W[8:30], r2[2:], W[31:]])  # rows replace their columns
    z = h2 @ Wfull.T
    if softcap:
        z = softcap * torch.tanh(z / softcap)
    want = torch.nn.functional.cross_entropy(z, targets, reduction="sum")
    wh, wr = torch.autograd.grad(want * 2.0, (h2, r2))

    assert torch.allclose(got.double(), want, atol=1e-6)
    assert torch.allclose(gh, wh, atol=1e-6) and torch.allclose(gr, wr, atol=1e-6)
    # and head_logits gives those same logits
    z2 = head_logits(h.detach(), W, rows.detach(), ids, softcap)
    assert torch.allclose(z2.double(), z.detach(), atol=1e-5)


def test_empty_selection_is_zero_with_gradients():
    h = torch.zeros(0, 4, requires_grad=True)
    rows = torch.zeros(2, 4, requires_grad=True)
    loss = chunked_loss_sum(h, torch.zeros(5, 4), rows, torch.tensor([0, 1]), torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert float(loss.detach()) == 0.0 and rows.grad is not None


def test_token_weights_scale_each_term_and_its_gradient():
    g = torch.Generator().manual_seed(1)
    N, d, V = 9, 6, 30
    ids = torch.tensor([2, 5])
    W = torch.randn(V, d, generator=g, dtype=torch.float64)
    h = torch.randn(N, d, generator=g, dtype=torch.float64, requires_grad=True)
    rows = torch.randn(2, d, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, V, (N,), generator=g)
    targets[:2] = ids
    w = torch.tensor([4.0, 1.0, 1.0, 0.5, 1.0, 3.0, 1.0, 1.0, 2.0], dtype=torch.float64)

    got = chunked_loss_sum(h, W, rows, ids, targets, chunk=4, token_weights=w)
    gh, gr = torch.autograd.grad(got, (h, rows))

    h2 = h.detach().clone().requires_grad_(True)
    r2 = rows.detach().clone().requires_grad_(True)
    Wfull = torch.cat([W[:2], r2[:1], W[3:5], r2[1:2], W[6:]])
    per = torch.nn.functional.cross_entropy(h2 @ Wfull.T, targets, reduction="none")
    want = (per * w).sum()
    wh, wr = torch.autograd.grad(want, (h2, r2))
    assert torch.allclose(got.double(), want, atol=1e-6)
    assert torch.allclose(gh, wh, atol=1e-6) and torch.allclose(gr, wr, atol=1e-6)
    # weights of 1 are the unweighted loss
    ones = chunked_loss_sum(h.detach(), W, rows.detach(), ids, targets, chunk=4, token_weights=torch.ones(N))
    plain = chunked_loss_sum(h.detach(), W, rows.detach(), ids, targets, chunk=4)
    assert torch.allclose(ones, plain)
