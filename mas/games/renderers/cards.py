"""Games with hidden cards or dice: Kuhn and Leduc poker, Liar's Dice, Hanabi. A seat's view holds
its own private information and the public history only."""
from __future__ import annotations

import re

import pyspiel

from mas.games.renderers.base import ANSWER_INSTRUCTIONS, COMPACT_INSTRUCTIONS, Renderer, bracket, renderer


@renderer("kuhn_poker")
class KuhnRenderer(Renderer):
    """Kuhn poker (2 players; cards 0, 1, 2 are J, Q, K). Only the seat's own card is ever shown."""

    is_poker = True
    CARDS = "JQK"
    rules = ("The deck is J < Q < K. Each player antes 1 chip and gets one private card. <PASS> checks, or "
             "folds to a bet; <BET> adds 1 chip, or calls a bet. After two passes or a call the higher card "
             "wins the pot; a fold loses the chips committed.")

    def __init__(self, game: pyspiel.Game):
        super().__init__(game)
        if game.num_players() != 2:
            raise ValueError("kuhn_poker: the hand-written renderer is for 2 players")
        self.public_actions = True  # bets are public; the deal is not

    def system_prompt(self, seat: int) -> str:
        # Written out in full: this text is part of the tiny models' tokenizer corpus, so any change
        # to it changes the built-in models (and every result measured with them).
        order = "first" if seat == 0 else "second"
        return (
            "You are an AI agent that makes optimal decisions to win in the game of Kuhn poker.\n"
            f"GAME RULES: {self.rules}\n"
            f"PLAYER INFORMATION: You are player {seat} and act {order}.\n{ANSWER_INSTRUCTIONS}"
        )

    def compact_system_prompt(self, seat: int) -> str:
        return f"Kuhn poker: J < Q < K, ante 1, one bet of 1. You are player {seat}. {COMPACT_INSTRUCTIONS}"

    def action_text(self, state: pyspiel.State, player: int, action: int) -> str:
        return bracket(state.action_to_string(player, action).upper())  # Pass/Bet -> <PASS>/<BET>

    @staticmethod
    def committed(state: pyspiel.State, seat: int) -> list[float]:
        """Chips each player has put in the pot (ante included), from `seat`'s observation tensor:
        [player one-hot (n), card one-hot (n+1), contributions (n)]."""
        n = state.num_players()
        t = state.observation_tensor(seat)
        return [float(x) for x in t[2 * n + 1: 3 * n + 1]]

    def view(self, state: pyspiel.State, seat: int) -> list[str]:
        card = self.CARDS[state.history()[seat]]  # the first n actions deal one card per player
        chips = self.committed(state, seat)
        mine, theirs = chips[seat], chips[1 - seat]
        return [f"Your card: {card}", f"Pot: {mine + theirs:g} (you {mine:g}, opponent {theirs:g})"]

    def stake(self, state: pyspiel.State, seat: int) -> float:
        return self.committed(state, seat)[seat]


@renderer("leduc_poker")
class LeducRenderer(Renderer):
    """Leduc poker: six cards (J, Q, K in two suits), one private card each, one public card after
    the first betting round; raises of 2 then 4 chips, at most two per round."""

    is_poker = True
    RANKS = "JQK"
    rules = ("The deck has two each of J < Q < K. Each player antes 1 chip and gets one private card. "
             "Two betting rounds: raises are 2 chips in the first round and 4 in the second, at most two "
             "per round. After the first round one public card is shown. A pair with the public card wins, "
             "else the higher card; a fold loses the chips committed.")
    _FIELD = re.compile(r"\[(\w+): ?([^\]]*)\]")

    def __init__(self, game: pyspiel.Game):
        super().__init__(game)
        self.public_actions = True
        self.suits = game.get_parameters().get("suits", 2)

    def compact_system_prompt(self, seat: int) -> str:
        return (f"Leduc poker: J < Q < K, a pair with the board wins. You are player {seat}. "
                f"{COMPACT_INSTRUCTIONS}")

    def _fields(self, state: pyspiel.State, seat: int) -> dict[str, str]:
        return dict(self._FIELD.findall(state.observation_string(seat)))

    def _card(self, value: str) -> str:
        card = int(value)
        return "none yet" if card < 0 else self.RANKS[card // self.suits]

    def action_text(self, state: pyspiel.State, player: int, action: int) -> str:
        return bracket(state.action_to_string(player, action).upper())  # Call/Raise/Fold

    def view(self, state: pyspiel.State, seat: int) -> list[str]:
        f = self._fields(state, seat)
        ante = f.get("Ante", "1 1").split()
        return [f"Your card: {self._card(f.get('Private', '-1'))}",
                f"Board card: {self._card(f.get('Public', '-1'))}",
                f"Round {f.get('Round', '1')}. Pot: {f.get('Pot', '?')} (you {ante[seat]}, opponent {ante[1 - seat]})"]

    def stake(self, state: pyspiel.State, seat: int) -> float:
        # "[Ante: a b]" in the observation string is each player's total contribution so far.
        ante = self._fields(state, seat).get("Ante")
        return float(ante.split()[seat]) if ante else 1.0


@renderer("liars_dice")
class LiarsDiceRenderer(Renderer):
    """Liar's Dice: each player rolls hidden dice; bids of "quantity-face" must rise; `Liar` calls the
    last bid. The view is the seat's own dice and the public bids (its information state)."""

    rules = ("Each player rolls hidden dice. Players take turns bidding how many dice of a face all players "
             "hold together (quantity-face, e.g. 2-5 = at least two fives); each bid must be higher than the "
             "last. Instead of bidding you may call <LIAR>: if the last bid is true the caller loses, else "
             "the bidder loses. A 6 counts as any face.")

    def compact_system_prompt(self, seat: int) -> str:
        return f"Liar's Dice: raise the bid or call <LIAR>. You are player {seat}. {COMPACT_INSTRUCTIONS}"

    def action_text(self, state: pyspiel.State, player: int, action: int) -> str:
        text = state.action_to_string(player, action)
        return "<LIAR>" if text.lower() == "liar" else f"<BID{text}>"

    def view(self, state: pyspiel.State, seat: int) -> list[str]:
        info = state.information_state_string(seat).split()
        dice = [d for d in info if "-" not in d and d.lower() != "liar"]
        bids = [b for b in info if "-" in b]
        return [f"Your dice: {' '.join(dice)}", "Bids so far: " + (" ".join(bids) if bids else "none")]


@renderer("hanabi")
class HanabiRenderer(Renderer):
    """Hanabi (cooperative): a seat sees every hand but its own and what it has been told about its
    own cards, through OpenSpiel's observation string (own cards are shown as XX)."""

    rules = ("A cooperative card game. Together, play cards of each colour in rank order 1, 2, ... onto "
             "the fireworks. You cannot see your own cards, only the others'. On your turn: play a card "
             "from your hand (by position), discard one (regains an information token), or spend an "
             "information token to hint (<HINTR>: which of the partner's cards are red; <HINT2>: which "
             "are 2s; the hint reveals all of them). A "
             "card that does not fit costs a life. The score is the number of cards played.")

    def compact_system_prompt(self, seat: int) -> str:
        return f"Hanabi: cooperate to play cards in order. You are player {seat}. {COMPACT_INSTRUCTIONS}"

    def action_text(self, state: pyspiel.State, player: int, action: int) -> str:
        # "(Play 0)" -> <PLAY0>, "(Discard 1)" -> <DISCARD1>; "(Reveal player +1 color R)" -> <HINTR> and
        # "(Reveal player +1 rank 2)" -> <HINT2> (the offset is written out with more than 2 players)
        words = state.action_to_string(player, action).strip("()").split()
        if words[0] != "Reveal":
            return bracket("".join(words).upper())
        offset = "" if self.num_players == 2 else words[2]
        return f"<HINT{offset}{words[-1].upper()}>"

    def view(self, state: pyspiel.State, seat: int) -> list[str]:
        text = "\n".join(line.rstrip() for line in state.observation_string(seat).strip("\n").splitlines())
        return ["State (your own cards show as XX, with what you know of them):", text]

    def stake(self, state: pyspiel.State, seat: int) -> float:
        return max(0.0, float(state.returns()[seat]))  # the team's score so far
