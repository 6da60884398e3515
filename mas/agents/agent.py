"""An agent: a name, a role prompt, the policy (model) it runs and how it samples."""
from __future__ import annotations

from dataclasses import dataclass, field

from mas.agents.backends.base import SamplingParams


@dataclass(frozen=True)
class Agent:
    name: str
    policy: str
    role_prompt: str = ""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    # Constrained decoding: answers are restricted to `answer_format` filled with a legal action.
    constrained: bool = False
    answer_format: str = "<answer>{action}</answer>"
    group: str | None = None  # functional group for shared baselines; None = its own

    def with_role(self, messages: list[dict]) -> list[dict]:
        """The env's messages with this agent's role prompt in front of the system message."""
        if not self.role_prompt:
            return messages
        if messages and messages[0]["role"] == "system":
            head = {"role": "system", "content": f"{self.role_prompt}\n{messages[0]['content']}"}
            return [head, *messages[1:]]
        return [{"role": "system", "content": self.role_prompt}, *messages]
