"""Chat messages -> prompt text with the tokenizer's own chat template, about 5x faster than
`apply_chat_template` per chat (which rebuilds the template's globals and copies every message
on each call): the compiled template renders straight into a context prepared once.

The fast path is used only where it is exact: it must render a probe chat exactly as
`apply_chat_template` does, and a chat must hold plain role/content messages; anything else goes
through `apply_chat_template` itself."""
from __future__ import annotations

try:
    from jinja2 import TemplateError
except ImportError:  # no jinja2: apply_chat_template cannot render either, and says so itself
    TemplateError = ValueError

PLAIN_KEYS = {"role", "content"}
PROBE = [{"role": "system", "content": "Rules: a b.\n <x>"}, {"role": "user", "content": " Hi  there\n\n1,2"},
         {"role": "assistant", "content": "<answer>A</answer>"}, {"role": "user", "content": "ok?"}]


class ChatRenderer:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._template = None
        try:
            # transformers compiles (and caches) the template in its own sandboxed environment
            from transformers.utils.chat_template_utils import _compile_jinja_template

            template = _compile_jinja_template(tokenizer.get_chat_template())
        except (ImportError, ValueError, TemplateError):  # no template, or no such helper: the slow path
            return
        # What apply_chat_template passes besides the chat: the special tokens, no tools or documents.
        self._base = {**template.globals, **tokenizer.special_tokens_map, "tools": None, "documents": None}
        self._template = template
        try:
            exact = all(self._render_fast(PROBE, gp) == self._render_slow([PROBE], gp)[0] for gp in (True, False))
        except (TemplateError, TypeError, ValueError):  # e.g. a template that refuses the probe's roles
            exact = False
        if not exact:
            self._template = None

    def render_many(self, chats: list[list[dict]], generation_prompt: bool = True) -> list[str]:
        if self._template is None or not all(set(m) <= PLAIN_KEYS for chat in chats for m in chat):
            return self._render_slow(chats, generation_prompt)
        return [self._render_fast(chat, generation_prompt) for chat in chats]

    def _render_fast(self, chat: list[dict], generation_prompt: bool) -> str:
        template = self._template
        # shared=True: the dict is the context as is (it already holds the template's globals)
        context = template.new_context({**self._base, "messages": chat, "add_generation_prompt": generation_prompt},
                                       shared=True)
        return template.environment.concat(template.root_render_func(context))

    def _render_slow(self, chats: list[list[dict]], generation_prompt: bool) -> list[str]:
        return self.tokenizer.apply_chat_template([list(c) for c in chats], add_generation_prompt=generation_prompt,
                                                  tokenize=False)
