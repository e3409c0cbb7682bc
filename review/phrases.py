"""The word pairs a phrase query implies, for messaging's `message_phrase_pairs` index.

`websearch_to_tsquery` makes `'will' <-> 'you'` of "will you": PostgreSQL's GIN index on the
search vector finds the rows holding both words and checks their positions on each row, which
for two common words is most of the archive (1.03M rows for "the and" in one channel at 10M
messages, 9.3 s). messaging 0020 indexes each message's adjacent pairs of short words (at most
SHORT characters each: the most frequent words) as lexemes ("will_you"); `pairs_query` turns a
query into the pairs every match must hold, so the index finds the rows where the words stand
side by side and the phrase is checked on those only.

The pairs are a necessary condition, never a narrower one: they come only from the phrases the
query requires (its top-level AND), never from a phrase under OR or NOT, and only pairs of
short words, the only ones the index has. tests/review/test_phrases.py checks
on PostgreSQL that adding them never changes what a query finds.
"""

import itertools
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

# A tsquery as PostgreSQL prints it: quoted lexemes ('' and \\ escaped inside, then an optional
# :* prefix or weights), and the operators ! & | <-> <N> and parentheses.
_TOKEN = re.compile(r"\s*(?:'((?:[^'\\]|''|\\.)*)'(:[*A-Da-d]+)?|(<->|<\d+>|[!&|()]))")
SHORT = 4  # characters: the words messaging 0020's message_word_pairs pairs


@dataclass(frozen=True)
class _Node:
    op: str  # "word", "!", "&", "|", "<1>", "<2>", ...
    word: str = ""
    exact: bool = True  # a word without prefix or weights
    left: "_Node | None" = None
    right: "_Node | None" = None


def _tokens(text: str) -> list[tuple[str, str, bool]]:
    found, at = [], 0
    while at < len(text):
        if not text[at:].strip():
            break
        match = _TOKEN.match(text, at)
        if match is None:
            raise ValueError(f"not a tsquery at {at}: {text[at : at + 20]!r}")
        quoted, suffix, operator = match.groups()
        if operator is not None:
            found.append(("<1>" if operator == "<->" else operator, "", True))
        else:
            found.append(("word", re.sub(r"''|\\(.)", _unescape, quoted), not suffix))
        at = match.end()
    return found


def _unescape(match: re.Match[str]) -> str:
    return "'" if match.group(0) == "''" else match.group(1)


class _Parser:
    """Precedence as PostgreSQL's: ! binds tightest, then <->, then &, then |."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][0] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str, bool]:
        if self.at >= len(self.tokens):
            raise ValueError("unbalanced tsquery")
        token = self.tokens[self.at]
        self.at += 1
        return token

    def parse(self) -> _Node | None:
        if not self.tokens:
            return None
        node = self.either()
        if self.peek() is not None:
            raise ValueError("unbalanced tsquery")
        return node

    def either(self) -> _Node:
        return self._chain(lambda op: op == "|", self.both)

    def both(self) -> _Node:
        return self._chain(lambda op: op == "&", self.followed)

    def followed(self) -> _Node:
        return self._chain(lambda op: op.startswith("<"), self.single)

    def _chain(self, joins: Callable[[str], bool], operand: Callable[[], _Node]) -> _Node:
        """Operands joined left to right by the operators `joins` accepts."""
        node = operand()
        while (op := self.peek()) is not None and joins(op):
            self.take()
            node = _Node(op, left=node, right=operand())
        return node

    def single(self) -> _Node:
        op, word, exact = self.take()
        if op == "!":
            return _Node("!", left=self.single())
        if op == "(":
            node = self.either()
            if self.take()[0] != ")":
                raise ValueError("unbalanced tsquery")
            return node
        if op != "word":
            raise ValueError(f"unexpected {op!r} in tsquery")
        return _Node("word", word=word, exact=exact)


def _required(node: _Node) -> list[_Node]:
    """The parts every match must satisfy: the operands of the top-level AND."""
    if node.op == "&":
        assert node.left is not None and node.right is not None
        return _required(node.left) + _required(node.right)
    return [node]


def _phrase_words(node: _Node) -> list[str] | None:
    """The words of a phrase of exact words each right after the last, in order; else None."""
    if node.op == "word":
        return [node.word] if node.exact else None
    if node.op != "<1>":
        return None
    assert node.left is not None and node.right is not None
    left, right = _phrase_words(node.left), _phrase_words(node.right)
    return None if left is None or right is None else left + right


def pairs(tsquery: str) -> list[str]:
    """The word pairs (as message_word_pairs writes them) every match of `tsquery` holds."""
    root = _Parser(tsquery).parse()
    found: list[str] = []
    for part in _required(root) if root is not None else []:
        words = _phrase_words(part)
        if words is None or len(words) < 2:
            continue
        for first, second in itertools.pairwise(words):
            if len(first) <= SHORT and len(second) <= SHORT:
                pair = f"{first}_{second}"
                if pair not in found:
                    found.append(pair)
    return found


def pairs_query(tsquery: str) -> str | None:
    """`pairs` as a tsquery (each pair a quoted lexeme, ANDed), or None when there are none."""
    return all_of(pairs(tsquery))


def _required_words(tsquery: str) -> list[str]:
    """The words of the phrases (and plain words) every match of `tsquery` must hold."""
    root = _Parser(tsquery).parse()
    required = _required(root) if root is not None else []
    return [word for part in required for word in _phrase_words(part) or []]


def short_words(tsquery: str) -> list[str]:
    """The words of at most SHORT characters every match of `tsquery` holds: what long_words
    leaves out unless they are `rare`."""
    return list(dict.fromkeys(w for w in _required_words(tsquery) if len(w) <= SHORT))


def long_words(tsquery: str, rare: Collection[str] = ()) -> list[str]:
    """The words longer than SHORT that every match of `tsquery` holds, and its short words that
    are `rare`, when it requires a short word that is not; else none. For a phrase that implies
    no pair ("nakuwou the").

    Such a phrase is found through its words' index (messaging's GIN on `search`), which reads
    the posting list of every word the query names: at 10M messages the short word's ("the",
    half the archive) was 6,019 pages, 51-57 ms of each statement, where the long word's own
    was 414 (docs/SCALE.md §7k). A short word is most often a frequent one, but not always (a
    name, a number: "gubu", 32,481 rows at 10M, where "adviser" has 142,093): the caller says
    which are `rare` (review.search asks the planner), and they are kept. These words are a
    necessary condition (they come, as the pairs do, only from what the query requires: its
    top-level AND, never under OR or NOT), and the query itself is checked on the rows they
    give."""
    words = _required_words(tsquery)
    kept = [word for word in words if len(word) > SHORT or word in rare]
    if len(kept) == len(words):
        return []  # no short word the index would read in vain
    return list(dict.fromkeys(kept))


def all_of(lexemes: list[str]) -> str | None:
    """`lexemes` as a tsquery, each quoted, ANDed; None for none."""
    quoted = ["'" + x.replace("\\", "\\\\").replace("'", "''") + "'" for x in lexemes]
    return " & ".join(quoted) or None
