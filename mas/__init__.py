"""mas: train LLM agents by self-play and multi-agent reinforcement learning."""

__version__ = "0.1.0"
