"""Serial-parallel training (ASPD, docs/format.md sections 2-3): encoding, masks, LoRA training, the delta."""
