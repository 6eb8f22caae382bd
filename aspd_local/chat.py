"""Chat prompts: the model's chat template from GGUF metadata (Jinja), or a plain fallback.

Prompts are built token by token so that a conversation can be extended without re-tokenizing
earlier turns: the template is rendered with a placeholder for every message's content, the
template's own text is tokenized with special tokens parsed, user text without (so a user can
never type a control token), and assistant turns keep the exact tokens the engine produced
(ASPD control tokens included) -- which is what the KV cache of a session holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import jinja2
import jinja2.sandbox

from .errors import ChatTemplateError
from .llama.model import Model

# Used when the GGUF has no chat template. Every message content stands on its own lines, so no
# word is split at a seam between template text and message text.
PLAIN_TEMPLATE = (
    "{% for m in messages %}"
    "### {{ m['role'] | capitalize }}:\n{{ m['content'] }}\n\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)

_SLOT = "\ue000{}\ue001"
_SLOT_RE = re.compile("\ue000(\\d+)\ue001")
ROLES = ("system", "user", "assistant")


@dataclass
class Message:
    role: str
    content: str
    tokens: list[int] | None = None  # an assistant turn as the engine produced it

    @classmethod
    def of(cls, m: "Message | Mapping") -> "Message":
        if isinstance(m, Message):
            return m
        try:
            role, content = m["role"], m["content"]
        except (KeyError, TypeError):
            raise ChatTemplateError(f"a chat message needs 'role' and 'content', got {m!r}") from None
        if role not in ROLES:
            raise ChatTemplateError(f"unknown chat role {role!r}; roles are {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ChatTemplateError(f"message content must be a string, got {type(content).__name__}")
        return cls(role, content, list(m["tokens"]) if m.get("tokens") is not None else None)


def _raise(msg):
    raise jinja2.exceptions.TemplateError(msg)


class ChatFormat:
    def __init__(self, model: Model, template: str | None = None):
        self.model = model
        source = template if template is not None else model.chat_template()
        self.is_fallback = source is None
        self.source = source or PLAIN_TEMPLATE
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        try:
            self._template = env.from_string(self.source)
        except jinja2.exceptions.TemplateError as e:
            raise ChatTemplateError(f"the model's chat template does not parse: {e}") from None
        self.bos_text = model.token_text(model.bos) if model.bos >= 0 else ""
        eos = model.eos
        self.eos_text = model.token_text(eos) if eos >= 0 else ""

    def render(self, messages: Iterable[Mapping], add_generation_prompt: bool = True) -> str:
        try:
            return self._template.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                         bos_token=self.bos_text, eos_token=self.eos_text)
        except jinja2.exceptions.TemplateError as e:
            raise ChatTemplateError(f"chat template failed: {e}") from None

    def prompt_tokens(self, messages: Iterable["Message | Mapping"]) -> list[int]:
        """Tokens of the conversation, ending with the generation prompt for the assistant."""
        msgs = [Message.of(m) for m in messages]
        if not msgs:
            raise ChatTemplateError("no messages")
        text = self.render([{"role": m.role, "content": _SLOT.format(i)} for i, m in enumerate(msgs)])
        tokens: list[int] = []
        pos = 0
        for match in _SLOT_RE.finditer(text):
            tokens += self._template_text(text[pos:match.start()], first=not tokens and pos == 0)
            m = msgs[int(match.group(1))]
            if m.role == "assistant" and m.tokens is not None:
                tokens += m.tokens
            else:
                tokens += self.model.tokenize(m.content, add_special=False, parse_special=False)
            pos = match.end()
        tokens += self._template_text(text[pos:], first=not tokens)
        return tokens

    def _template_text(self, s: str, first: bool) -> list[int]:
        toks = self.model.tokenize(s, add_special=False, parse_special=True) if s else []
        if first and self.model.add_bos and self.model.bos >= 0 and (not toks or toks[0] != self.model.bos):
            toks = [self.model.bos] + toks
        return toks
