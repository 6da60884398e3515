"""How far apart the cards are for a model's policy on Kuhn poker: the gradient, with respect to
fresh LoRA adapters, of the first mover's bet-versus-pass logit for the J, Q and K prompt.

    python benchmarks/card_gradients.py [--model smollm2-135m-instruct] [--prompt compact|full]

Prints the logit gaps, the cosine similarity of the J and K gradients, and the size of what tells
the cards apart (|g_K - g_J|) against what they share (|mean g|). A similarity near 1 means that
any update moves the three cards' policies together: a signal shared by the cards (bet more) is
learned far faster than one that tells them apart (bet with K, pass with J)."""
from __future__ import annotations

import argparse

import torch
from peft import LoraConfig, get_peft_model

from mas.agents.agent import Agent
from mas.agents.chat import PromptTokenizer
from mas.agents.models import load_model, load_tokenizer, resolve
from mas.games import make


def first_move_prompts(prompt: str) -> dict[str, list[dict]]:
    """The first mover's chat for each of its cards (the game's own rendering)."""
    env = make({"name": "kuhn_poker", "prompt": prompt, "history": False})
    chats: dict[str, list[dict]] = {}
    for seed in range(200):
        state = env.reset(seed)
        seat = state.current_seats()[0]
        card = next(line.split(": ")[1] for line in state.messages(seat)[-1]["content"].splitlines()
                    if line.startswith("Your card"))
        chats.setdefault(card, state.messages(seat))
        if len(chats) == 3:
            return chats
    raise RuntimeError("kuhn_poker: 200 deals without all three cards for the first mover")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompt", default="compact", choices=["compact", "full"])
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    path = resolve(args.model)
    tokenizer, model = load_tokenizer(path), load_model(path)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    with torch.no_grad():  # B starts at zero, which leaves A without gradient: as after a first step
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1e-3)
    params = [p for p in model.parameters() if p.requires_grad]
    prompts = PromptTokenizer(tokenizer)
    answer = Agent(name="player", policy="main").answer_format
    pass_ids, bet_ids = prompts.answer_candidates([answer.format(action=a) for a in ("<PASS>", "<BET>")])
    branch = next(i for i, (a, b) in enumerate(zip(pass_ids, bet_ids)) if a != b)
    grads, gaps = {}, {}
    for card, chat in sorted(first_move_prompts(args.prompt).items(), key=lambda kv: "JQK".index(kv[0])):
        ids = torch.tensor([prompts.first(chat) + bet_ids[:branch]])
        model.zero_grad()
        logits = model(ids).logits[0, -1]
        gap = logits[bet_ids[branch]] - logits[pass_ids[branch]]
        gap.backward()
        grads[card] = torch.cat([p.grad.flatten() for p in params]).clone()
        gaps[card] = float(gap.detach())
    cos = float(grads["J"] @ grads["K"] / grads["J"].norm() / grads["K"].norm())
    mean = (grads["J"] + grads["Q"] + grads["K"]) / 3
    apart = float((grads["K"] - grads["J"]).norm() / mean.norm())
    print(f"{args.model}, {args.prompt} prompt: bet-minus-pass logit J {gaps['J']:+.2f} Q {gaps['Q']:+.2f} "
          f"K {gaps['K']:+.2f}; gradient cosine J-K {cos:.4f}; |g_K - g_J| / |mean g| {apart:.3f}")


if __name__ == "__main__":
    main()
