"""An explicit final-answer marker wins over numbers elsewhere in a response: GSM8K's own `#### N`
line, or the last `\\boxed{}`, whichever comes later. Without one, extraction is unchanged. The
first two responses are GSM8K reference solutions (test split) that math-verify alone misreads,
because a number near the word "answer" outranks the last number."""
from __future__ import annotations

import pytest

from mas.evaluation.reasoning.scoring import extract_answer, score_item

POKEMON = ("Then add the number of each type of Pokemon to find the total number: 34 Pokemon + 32 Pokemon + "
           "30 Pokemon = <<34+32+30=96>>96 Pokemon\nThen divide the number of water type Pokemon by the total "
           "number of Pokemon and multiply by 100% to express the answer as a percentage: 32 water type / "
           "96 Pokemon * 100% = 33.333...%, which rounds down to 33%\n#### 33")
CRAYONS = ("The answer to the first part is 28 crayons.\nShe puts them in boxes of 7: 28 / 7 = <<28/7=4>>4 "
           "boxes.\n#### 4")


@pytest.mark.parametrize("gold, response, extracted", [
    ("33", POKEMON, "33"),  # not 33.333
    ("4", CRAYONS, "4"),  # not 28
    ("1234", "The answer is 1,000 + 234 houses.\n#### 1,234", "1234"),  # commas, as the loader drops them
    ("-7.5", "The answer is 3 degrees colder.\n#### -7.5", "-7.5"),
    ("18", "The answer is 9 * 2 dollars.\n  #### $18  ", "18"),
    ("5", "#### 4\nOn reflection the answer is $\\boxed{5}$.", "5"),  # a later box wins over ####
    ("4", "Say $\\boxed{5}$. No: the answer is 28 - 24.\n#### 4", "4"),  # ... and a later #### over a box
    ("5", "The answer is 28 crayons, so $x = \\boxed{5}$.", "5"),  # a box wins over an "answer" number
    ("3", "<think>#### 9</think>The answer is 2 + 1 = 3", "3"),  # a marker inside <think> does not count
])
def test_a_final_answer_marker_wins(gold, response, extracted):
    assert extract_answer(response, "math") == extracted
    assert score_item(gold, "math", [response], timeout=5.0) == [(True, extracted, False)]


@pytest.mark.parametrize("gold, response, extracted", [
    ("180", "15 * 12 = 180 dollars.", "180"),  # no marker: the last number, as before
    ("12", "The answer is 12 because 15 - 3 = 12, checked 2 times", "12"),  # no marker: "answer" first
    ("3", "#### Step 1: add\n1 + 2 = 3", "3"),  # a markdown heading is not a final-answer line
    ("3", "#### 2. Add the two\n1 + 2 = 3", "3"),
])
def test_without_a_marker_extraction_is_unchanged(gold, response, extracted):
    assert extract_answer(response, "math") == extracted
    assert score_item(gold, "math", [response], timeout=5.0)[0][:2] == (True, extracted)
