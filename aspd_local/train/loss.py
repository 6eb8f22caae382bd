"""Cross-entropy over a large vocabulary without materialising all logits, with the tied output
embedding frozen except for a few trainable rows (the ASPD control tokens).

Gemma's vocabulary has 262,144 entries: full logits for a 512-token row are 0.5 GB in float32 and
their softmax dominates a CPU training step. The loss is computed chunk by chunk, and its gradients
(for the hidden states and for the trainable rows) are formed in the same pass, so nothing of size
``tokens x vocab`` outlives a chunk.
"""

from __future__ import annotations

import torch


def head_logits(h: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor, row_ids: torch.Tensor,
                softcap: float | None = None) -> torch.Tensor:
    """Float32 logits ``h @ weight.T`` with the columns ``row_ids`` computed from ``rows`` instead."""
    z = (h.to(weight.dtype) @ weight.T).float()
    z[:, row_ids] = h.float() @ rows.float().T
    if softcap:
        z = softcap * torch.tanh(z / softcap)
    return z


class _ChunkedHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, rows, weight, row_ids, targets, chunk, softcap, token_weights):
        total = torch.zeros((), dtype=torch.float32)
        grad_h = torch.empty_like(h)
        grad_rows = torch.zeros_like(rows, dtype=torch.float32)
        rows32 = rows.float()
        for s in range(0, h.shape[0], chunk):
            hc = h[s:s + chunk]
            tc = targets[s:s + chunk]
            wc = None if token_weights is None else token_weights[s:s + chunk].float()
            z = (hc.to(weight.dtype) @ weight.T).float()
            z[:, row_ids] = hc.float() @ rows32.T
            if softcap:
                t = torch.tanh(z / softcap)
                z = softcap * t
            picked = z.gather(1, tc[:, None])[:, 0]
            m = z.amax(dim=-1, keepdim=True)
            g = z.sub_(m).exp_()  # in place of the logits
            s_ = g.sum(dim=-1, keepdim=True)
            ce = m[:, 0] + s_[:, 0].log() - picked
            total += (ce if wc is None else ce * wc).sum()
            g.div_(s_)  # softmax
            g[torch.arange(len(tc)), tc] -= 1.0
            if wc is not None:
                g.mul_(wc[:, None])
            if softcap:
                g.mul_(1.0 - t * t)
            g_rows = g[:, row_ids].clone()
            g[:, row_ids] = 0.0
            grad_h[s:s + chunk] = ((g.to(weight.dtype) @ weight).float() + g_rows @ rows32).to(h.dtype)
            grad_rows += g_rows.T @ hc.float()
        ctx.save_for_backward(grad_h, grad_rows)
        ctx.rows_dtype = rows.dtype
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_rows = ctx.saved_tensors
        return (grad_h * grad_out.to(grad_h.dtype), (grad_rows * grad_out).to(ctx.rows_dtype),
                None, None, None, None, None, None)


def chunked_loss_sum(h: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor, row_ids: torch.Tensor,
                     targets: torch.Tensor, chunk: int = 256, softcap: float | None = None,
                     token_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over tokens of ``-log softmax(logits)[target]`` for hidden states ``h`` (N, d), each term times
    its entry of ``token_weights`` (N,) when given; differentiable in ``h`` and ``rows`` (``weight`` is
    frozen)."""
    if h.shape[0] == 0:
        return (h.sum() + rows.sum()) * 0.0
    return _ChunkedHeadLoss.apply(h, rows, weight.detach(), row_ids, targets, chunk, softcap, token_weights)
