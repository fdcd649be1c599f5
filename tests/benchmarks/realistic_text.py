"""Text of a teacher's real volume and compressibility, fast and in bounded memory.

The synthetic lake's ``realistic`` profile needs solutions as long as their ``completion_tokens``
say (thousands of tokens, ~4 characters each) whose zstd ratio is that of real model output, not
a repeated string that compresses 100x. This module writes such text with first-order Markov
chains: one over math-reasoning units (English words of a worked solution, numbers, variables and
small LaTeX expressions, punctuation and line breaks) draws ``PHRASES`` phrases of 1-4 units once;
the text is a walk over those phrases. In both chains each item has ``SUCCESSORS`` likely next
items (Zipf-weighted) and with probability ``RESTART`` the walk jumps to one drawn from the whole
vocabulary, so common phrases recur the way "Let me check" does in real traces while numbers and
expressions keep varying.

Measured ratio (pyarrow's zstd, level 3): real reasoning-model math traces ("<think> Okay, so I
need to find ..."; 10 KB from a public file of such traces) compress 2.70x; one synthesized text of
the same length 2.6-2.8x; a Parquet column of many synthesized rows a little more (zstd also finds
the vocabulary across rows, as it does across real rows). ``tests/benchmarks/test_smoke.py``
checks the ratio stays within bounds.

Everything is vectorized: ``CHAINS`` walks advance in lockstep with numpy, the phrase ids become
text with pyarrow's ``take`` and ``binary_join``; a batch of N characters needs a few N bytes of
memory. The vocabularies and successor tables come from a fixed seed, so the same ``rng`` gives
the same text. No unit contains ``\\boxed``, ``<|`` or ``<think>``: the planted answers and the
Harmony channels stay the only ones in a solution.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

VERSION = 3  # bump when the text changes: cached realistic bench lakes are then rebuilt
SUCCESSORS = 8
RESTART = 0.5
CHAINS = 1 << 15
PHRASES = 100_000
VOCABULARY_SEED = 20_250_812

# Words of worked solutions, roughly by frequency (Zipf weights follow this order).
_WORDS = """
the we so is to of a that and let me it this = we need which be for in then so
check compute find value x but wait now equation if with not since as n are k
gives number sum can at answer get find total both then term case two first
our maybe right factor one each or from by should means all integer times equals
product must also square second root side use hmm ok same let's thus compute
only possible condition set values count divisible mod formula area triangle
prime positive real solution solve consider note since because yes no let's
hence therefore substitute simplify expand write denote recall try small cases
pattern works fails indeed actually double-check careful again order pairs
minimum maximum largest smallest difference ratio probability expected distinct
terms coefficient polynomial roots degree function domain range sequence series
digits remainder multiple divisor gcd lcm odd even circle radius angle length
point line slope parallel perpendicular chord tangent center vertices edges
graph color choose ways arrangements permutations combinations identity inequality
bound estimate approximate exactly compute quickly verify plug back original
given problem statement asks interpret means likely typical competition known
result lemma using by symmetry without loss generality assume suppose contradiction
then each these those there here where when what how many much more less than
greater equal between among within outside inside above below left right up down
"""

_PUNCTUATION = [".", ",", ":", "?", "\n\n", "\n", " -", " =", " +", " (", ")", " $", "$"]


def _math_units(r: np.random.Generator) -> list[str]:
    units = [str(n) for n in range(0, 1000)]
    units += [f"{r.integers(1000, 100_000)}" for _ in range(600)]
    units += [f"{r.integers(0, 100)}.{r.integers(0, 100):02d}" for _ in range(300)]
    letters = "abcdefghkmnpqrstuvwxyz"
    units += list(letters) + [f"{c}_{i}" for c in "axy" for i in range(1, 10)] + ["a_n", "a_{n+1}", "f(x)", "g(x)", "P(x)"]
    units += [f"\\frac{{{p}}}{{{q}}}" for p in range(1, 16) for q in range(2, 17) if p != q]
    units += [f"{c}^{k}" for c in "xyn2" for k in range(2, 10)]
    units += [f"\\sqrt{{{k}}}" for k in range(2, 60)]
    units += [f"\\binom{{{n}}}{{{k}}}" for n in range(2, 14) for k in range(1, n)]
    units += ["\\pi", "\\cdot", "\\le", "\\ge", "\\equiv", "\\pmod{7}", "\\pmod{9}", "\\infty", "\\sum", "\\prod"]
    units += [f"{a}x+{b}" for a in range(2, 10) for b in range(1, 12)]
    return units


class Chain:
    """A first-order Markov chain over ``texts``: each has SUCCESSORS likely next texts (Zipf-weighted);
    with probability RESTART it jumps to one drawn by ``weights`` instead."""

    def __init__(self, texts: pa.Array, weights: np.ndarray, r: np.random.Generator) -> None:
        n = len(texts)
        self.texts = texts
        self.lengths = pc.binary_length(texts).to_numpy().astype(np.int32)
        cum = np.cumsum(weights / weights.sum())
        # Draws by table look-up instead of a search: bin b of 2^20 holds the text at quantile b.
        self.by_quantile = np.minimum(np.searchsorted(cum, (np.arange(1 << 20) + 0.5) / (1 << 20)), n - 1)
        self.by_quantile = self.by_quantile.astype(np.int32)
        successors = self.by_quantile[r.integers(0, 1 << 20, (n, SUCCESSORS))]
        own = successors == np.arange(n)[:, None]  # no "the the": a text never follows itself
        successors[own] = (successors[own] + 1) % n
        self.successors = successors.reshape(-1).astype(np.int32)
        # 10-bit draw -> -1 (jump, RESTART of the mass) or the successor's rank (Zipf).
        choice = 1.0 / np.arange(1, SUCCESSORS + 1) ** 1.3
        choice_cum = RESTART + (1 - RESTART) * np.cumsum(choice / choice.sum())
        grid = (np.arange(1 << 10) + 0.5) / (1 << 10)
        self.step = np.minimum(np.where(grid < RESTART, -1, np.searchsorted(choice_cum, grid)), SUCCESSORS - 1)
        self.step = self.step.astype(np.int32)
        # The chain's own mean text length (its stationary mix differs from the weights).
        self.mean_length = float(self.lengths[self.walk(1 << 18, r)].mean())

    def walk(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` ids: up to CHAINS walks in lockstep (numpy over all of them per step), laid end to end."""
        chains = max(1, min(CHAINS, n // 64))
        steps = -(-n // chains)
        jumps = self.by_quantile[rng.integers(0, 1 << 20, (steps, chains), dtype=np.int32)]
        moves = self.step[rng.integers(0, 1 << 10, (steps, chains), dtype=np.int16)]
        out = np.empty((steps, chains), dtype=np.int32)
        state = jumps[0]
        for step in range(steps):
            out[step] = state
            move = moves[step]
            state = np.where(move < 0, jumps[step], self.successors[state * SUCCESSORS + np.maximum(move, 0)])
        return out.T.reshape(-1)[:n]


def _vocabulary(seed: int = VOCABULARY_SEED) -> Chain:
    """Words and math units in a chain; runs of 1-4 of them (PHRASES, drawn from that chain) in
    another: the text chain. Phrases make the text ~2x faster to write (fewer, longer units) and
    measured the same zstd ratio as single words."""
    r = np.random.default_rng(seed)
    words = list(dict.fromkeys(_WORDS.split()))
    math = _math_units(r)
    units = pa.array([" " + w for w in words] + _PUNCTUATION + [" " + m for m in math], pa.string())
    weights = np.concatenate([
        1.0 / np.arange(1, len(words) + 1) ** 0.9 * 6.0,  # words: Zipf by list order
        np.array([8.0, 5.0, 1.0, 0.5, 2.5, 1.5, 1.5, 2.0, 1.5, 1.0, 1.0, 1.0, 1.0]) / 6.0,
        1.0 / np.arange(1, len(math) + 1) ** 0.5 * 0.08,  # math: flatter, so values keep varying
    ])
    word_chain = Chain(units, weights, r)
    sizes = r.integers(1, 5, PHRASES)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    ids = word_chain.walk(int(offsets[-1]), r)
    phrases = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), units.take(pa.array(ids))), "")
    return Chain(phrases, 1.0 / np.arange(1, PHRASES + 1) ** 0.8, r)


_VOCABULARY: Chain | None = None


def vocabulary() -> Chain:
    global _VOCABULARY
    if _VOCABULARY is None:
        _VOCABULARY = _vocabulary()
    return _VOCABULARY


def synthesize(lengths: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """One text per entry of ``lengths`` (characters; ASCII, so bytes), each within one phrase of it."""
    vocab = vocabulary()
    lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 0)
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    ids = np.empty(0, dtype=np.int32)
    cum = np.empty(0, dtype=np.int64)
    while not len(cum) or cum[-1] < total:  # a walk runs a little short or long of the mean
        missing = total - (int(cum[-1]) if len(cum) else 0)
        more = vocab.walk(int(missing / vocab.mean_length * 1.01) + 256, rng)
        ids = np.concatenate([ids, more])
        cum = np.cumsum(vocab.lengths[ids], dtype=np.int64)
    # Row i takes the phrases up to the first whose cumulative length reaches its end.
    last = np.searchsorted(cum, ends, side="left")
    offsets = np.concatenate([[0], np.where(lengths > 0, last + 1, 0)])
    offsets = np.maximum.accumulate(offsets).astype(np.int32)
    units = vocab.texts.take(pa.array(ids[: offsets[-1]]))
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), units), "")
