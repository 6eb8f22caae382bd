"""Serial-parallel training (ASPD, spec sections 2-3): encoding, masks, LoRA training, the delta."""
