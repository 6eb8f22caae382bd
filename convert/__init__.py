"""The converter: Hugging Face checkpoints (and PEFT LoRA adapters) to GGUF with the ASPD metadata,
and back from a GGUF to a Hugging Face float model (for training).

    from convert import convert_checkpoint
    convert_checkpoint("my-finetune/", "my-finetune.gguf", "q8_0", aspd_tokens="<unused0>,...,<unused5>")
"""

from .errors import ConvertError
from .from_gguf import hf_dir_from_gguf
from .pipeline import convert_checkpoint
from .writer import OUTTYPES

__all__ = ["OUTTYPES", "ConvertError", "convert_checkpoint", "hf_dir_from_gguf"]
