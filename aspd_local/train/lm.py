"""A transformers causal LM run under the ASPD layout: explicit positions, 4-D masks (per attention
kind), and the six control-token embedding rows as a separate trainable tensor.

The embedding is tied to the output layer (Gemma 3 and SmolLM2 both tie it), so the control rows act on
both sides: inputs equal to a control id take their row (times the model's embedding scale where the
embedding module has one: Gemma's sqrt(d); llama's has none), and the logits of the control ids are
computed from the same rows. Everything else of the embedding stays frozen. Attention layers are full
(llama) or full and sliding-window (Gemma 3); the window is applied to the ASPD mask by position.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import TrainError
from .loss import chunked_loss_sum, head_logits
from .mask import IGNORE, Batch

SUPPORTED_LAYER_TYPES = {"full_attention", "sliding_attention"}


class AspdLM(nn.Module):
    def __init__(self, model: nn.Module, control_ids: Sequence[int]):
        super().__init__()
        self.model = model  # a transformers CausalLM, possibly with LoRA layers injected by peft
        self.decoder = model.get_decoder()
        self.embed = model.get_input_embeddings()
        cfg = model.config
        if not getattr(cfg, "tie_word_embeddings", False):
            raise TrainError("training the control rows expects tied input/output embeddings (as in Gemma 3 and "
                             "SmolLM2); this model has a separate output layer")
        types = set(getattr(cfg, "layer_types", None) or ["full_attention"])
        if not types <= SUPPORTED_LAYER_TYPES:
            raise TrainError(f"unsupported attention layer types {sorted(types - SUPPORTED_LAYER_TYPES)}")
        self.sliding_window = getattr(cfg, "sliding_window", None) if "sliding_attention" in types else None
        self.softcap = getattr(cfg, "final_logit_softcapping", None)
        self.register_buffer("row_ids", torch.tensor(list(control_ids), dtype=torch.long), persistent=False)
        self.rows = nn.Parameter(self.embed.weight.detach()[self.row_ids].float().clone())

    # -- pieces ---------------------------------------------------------------
    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.embed(input_ids)
        hit = input_ids[..., None] == self.row_ids  # (B, L, 6)
        if not bool(hit.any()):
            return out + 0.0 * self.rows.sum().to(out.dtype)
        idx = hit.float().argmax(-1)
        rep = self.rows[idx].to(out.dtype)
        scale = getattr(self.embed, "embed_scale", None)
        if scale is not None:
            rep = rep * scale.to(out.dtype)
        return torch.where(hit.any(-1, keepdim=True), rep, out)

    def attention_mask(self, batch: Batch):
        if self.sliding_window is None:
            return batch.masks["full_attention"]
        if "sliding_attention" not in batch.masks:
            raise TrainError("this model has sliding-window layers: build the batch with sliding_window")
        return dict(batch.masks)

    def hidden(self, batch: Batch) -> torch.Tensor:
        """Last hidden states (B, L, d)."""
        out = self.decoder(inputs_embeds=self.embed_tokens(batch.input_ids), position_ids=batch.position_ids,
                           attention_mask=self.attention_mask(batch), use_cache=False)
        return out.last_hidden_state

    def logits(self, batch: Batch) -> torch.Tensor:
        """Float32 logits (B, L, vocab); for tests and evaluation (training uses ``loss_sum``)."""
        h = self.hidden(batch)
        B, L, d = h.shape
        z = head_logits(h.reshape(B * L, d), self.embed.weight, self.rows, self.row_ids, self.softcap)
        return z.reshape(B, L, -1)

    def loss_sum(self, batch: Batch, chunk: int = 256) -> tuple[torch.Tensor, int]:
        """Summed token cross-entropy over the batch's targets (each times its weight, if the batch has
        weights), and their count."""
        h = self.hidden(batch)
        keep = batch.targets != IGNORE
        w = None if batch.weights is None else batch.weights[keep]
        return (chunked_loss_sum(h[keep], self.embed.weight, self.rows, self.row_ids, batch.targets[keep], chunk,
                                 self.softcap, w), int(keep.sum()))
