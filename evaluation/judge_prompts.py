"""The LLM judge's and LLM vote's prompts, worded after upstream ReasonLite (utils/prompt_func.py).

Upstream asked the teacher itself (i) to check one solution's boxed answer against the ground
truth, answering ``\\boxed{"match": true or false}``, and (ii) to tally a problem's answers,
answering ``\\boxed{"answer1": count1, ...}``. The wording below follows theirs so that verdicts
are comparable; the texts are filled by plain string concatenation (model answers are full of
braces, so no ``str.format``), and the messages are rendered by the run's own chat template or
Harmony like every other generation run (``generation.prompts``).
"""

from __future__ import annotations

from collections.abc import Sequence

# Upstream's judge prompt (two spaces at some line ends are theirs too: markdown line breaks).
JUDGE_HEADER = (
    "You are a math reasoning assistant. Your task is to check if the **model's answer** matches the "
    "**ground truth answer**.  \n"
    "\n"
    "- Consider mathematical equivalence, not just string matching.  \n"
    "- Simplify or transform expressions if needed.  \n"
    "- Only return the result in the required JSON format.\n"
    "\n"
    "Here is the question and answers:\n"
    "\n"
)
JUDGE_FOOTER = (
    "Please analyze step by step and determine if the two answers are mathematically the same. "
    'Output strictly in JSON, put your final answer within \\boxed{"match": true or false}.\n'
)

VOTE_HEADER = (
    "I have a math problem, and a large language model has generated n answers. Please help me "
    "summarize how many times each unique answer appears. If two answers are very similar, you can "
    "group them together. Here are the n answers:\n"
    "\n"
)
VOTE_FOOTER = (
    "...\n"
    "\n"
    "Please output the results strictly in JSON, with the final answer enclosed like this:\n"
    "\n"
    '\\boxed{"answer1": count1, "answer2": count2, ...}\n'
    "\n"
    "For example, if the input answers are [12, x=25, 25, 25, 12, -2], the output should be:\n"
    "\n"
    '\\boxed{"25": 3, "12": 2, "-2": 1}\n'
)


def judge_prompt(label: str, answer: str) -> str:
    """The user turn asking whether ``answer`` matches the ground truth ``label``."""
    return (
        JUDGE_HEADER
        + "Ground truth answer:\n" + label + "\n\n"
        + "Model's answer:\n" + answer + "\n\n"
        + JUDGE_FOOTER
    )


def vote_prompt(answers: Sequence[str]) -> str:
    """The user turn asking for a tally of one problem's answers (upstream lists every sample's)."""
    listed = "".join(f"Answer Index {i}:\n{a}\n\n" for i, a in enumerate(answers))
    return VOTE_HEADER + listed + VOTE_FOOTER


def judge_messages(label: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": judge_prompt(label, answer)}]


def vote_messages(answers: Sequence[str]) -> list[dict[str, str]]:
    return [{"role": "user", "content": vote_prompt(answers)}]
