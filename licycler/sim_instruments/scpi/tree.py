"""The command-tree declaration format of emulated SCPI instruments.

A command is declared with its header written as in the manuals: long form with the short form in
upper case, optional nodes in brackets, ``#`` where a node takes a numeric suffix (channel):

    Command("[:SOURce#]:CURRent[:LEVel][:IMMediate][:AMPLitude]",
            set=self._set_level, query=self._query_level,
            params=[Numeric(minimum=-1.05, maximum=1.05, unit="A")])

A typed header matches a pattern when each typed word is the short or the long form (any case) of
the next node, optional nodes being skipped; a suffix omitted is 1. The handler gets a
:class:`Call` with the suffixes and the parsed parameters. Handlers return ``None`` (set), a
reply string (query), or an awaitable of either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from licycler.sim_instruments.scpi.errors import ScpiError
from licycler.sim_instruments.scpi.values import Mnemonic, Param

__all__ = ["Call", "Command", "CommandTree", "HeaderPattern", "Node"]


@dataclass(frozen=True)
class Call:
    """One command as the handler sees it: the typed header, the numeric suffixes of the nodes
    that take one (1 where omitted), the parsed parameters, and whether it is a query."""

    header: str
    suffixes: tuple[int, ...]
    args: tuple[Any, ...]
    is_query: bool

    @property
    def channel(self) -> int:
        """The first numeric suffix (the channel on multi-channel instruments), 1 by default."""
        return self.suffixes[0] if self.suffixes else 1

    def arg(self, index: int, default: Any = None) -> Any:
        """Parameter ``index`` or ``default`` when it was not given."""
        return self.args[index] if index < len(self.args) else default


Handler = Callable[[Call], "str | Awaitable[str | None] | None"]


@dataclass(frozen=True)
class Node:
    """One header node: its mnemonic, whether it may be left out, whether it takes a suffix."""

    mnemonic: Mnemonic
    optional: bool
    suffix: bool

    def accept(self, word: str) -> int | None:
        """The node's suffix value if ``word`` spells this node (1 if none typed), else None."""
        if self.mnemonic.matches(word):
            return 1
        if not self.suffix:
            return None
        stem = word.rstrip("0123456789")
        if stem == word or not self.mnemonic.matches(stem):
            return None
        return int(word[len(stem) :])


@dataclass(frozen=True)
class HeaderPattern:
    """A parsed header declaration such as ``[:SENSe#]:VOLTage[:DC]:NPLCycles``."""

    text: str
    nodes: tuple[Node, ...]

    @classmethod
    def parse(cls, text: str) -> HeaderPattern:
        nodes: list[Node] = []
        i, n = 0, len(text)
        while i < n:
            optional = text[i] == "["
            if optional:
                close = text.find("]", i)
                if close < 0:
                    raise ValueError(f"unbalanced [ in header {text!r}")
                body, i = text[i + 1 : close], close + 1
            else:
                j = i + 1
                while j < n and text[j] not in ":[":
                    j += 1
                body, i = text[i:j], j
            body = body.lstrip(":")
            if not body:
                if optional:
                    raise ValueError(f"empty optional node in header {text!r}")
                continue
            suffix = body.endswith("#")
            name = body.rstrip("#")
            if not (name.replace("*", "").isalnum()):
                raise ValueError(f"bad node {body!r} in header {text!r}")
            nodes.append(Node(Mnemonic(name), optional, suffix))
        if not nodes:
            raise ValueError(f"empty header {text!r}")
        return cls(text, tuple(nodes))

    def short_path(self) -> str:
        """All nodes in short form joined by colons, e.g. ``VOLT:DC``."""
        return ":".join(node.mnemonic.short for node in self.nodes)

    def match(self, words: Sequence[str]) -> tuple[int, tuple[int, ...]] | None:
        """(number of optional nodes skipped, suffixes) of the best way ``words`` spell this
        header, or None. Suffixes are listed for every suffix node, 1 where not typed."""
        nodes = self.nodes
        n_nodes, n_words = len(nodes), len(words)

        def rec(i: int, j: int) -> tuple[int, tuple[int, ...]] | None:
            if i == n_nodes:
                return (0, ()) if j == n_words else None
            if n_nodes - i < n_words - j:
                return None
            node = nodes[i]
            best: tuple[int, tuple[int, ...]] | None = None
            if j < n_words:
                s = node.accept(words[j])
                if s is not None:
                    rest = rec(i + 1, j + 1)
                    if rest is not None:
                        best = (rest[0], ((s,) if node.suffix else ()) + rest[1])
            if node.optional:
                rest = rec(i + 1, j)
                if rest is not None and (best is None or rest[0] + 1 < best[0]):
                    best = (rest[0] + 1, ((1,) if node.suffix else ()) + rest[1])
            return best

        return rec(0, 0)


@dataclass
class Command:
    """A command of the tree: header pattern, set and/or query handler, their parameters.

    ``params`` are parsed for the set form, ``query_params`` for the query form (usually all
    optional). A parameter marked ``variadic`` (last only) takes all remaining tokens.
    """

    header: str
    set: Handler | None = None
    query: Handler | None = None
    params: Sequence[Param] = ()
    query_params: Sequence[Param] = ()
    pattern: HeaderPattern = field(init=False)

    def __post_init__(self) -> None:
        self.pattern = HeaderPattern.parse(self.header)

    def parse_args(self, tokens: Sequence[str], is_query: bool) -> tuple[Any, ...]:
        """Parse ``tokens`` against the declared parameters (-108 too many, -109 missing)."""
        specs = self.query_params if is_query else self.params
        values: list[Any] = []
        k = 0
        for spec in specs:
            if spec.variadic:
                rest = [spec.parse(t) for t in tokens[k:]]
                if not rest and not spec.optional:
                    raise ScpiError(-109)
                values.append(tuple(rest))
                k = len(tokens)
                break
            if k < len(tokens):
                values.append(spec.parse(tokens[k]))
                k += 1
            elif spec.optional:
                values.append(spec.default)
            else:
                raise ScpiError(-109)
        if k < len(tokens):
            raise ScpiError(-108)
        return tuple(values)


class CommandTree:
    """The commands of one instrument, resolving typed headers (with a cache).

    ``max_suffix`` bounds numeric suffixes (the number of channels): -114 beyond it.
    """

    _CACHE_LIMIT = 4096

    def __init__(self, commands: Sequence[Command], *, max_suffix: int = 1) -> None:
        self.commands = list(commands)
        self.max_suffix = max_suffix
        self._cache: dict[tuple[tuple[str, ...], bool], tuple[Command, tuple[int, ...]] | int] = {}

    def add(self, command: Command) -> None:
        self.commands.append(command)
        self._cache.clear()

    def resolve(self, words: Sequence[str], is_query: bool) -> tuple[Command, tuple[int, ...]]:
        """The command ``words`` (the full path, typed spellings) name, and its suffixes."""
        key = (tuple(w.upper() for w in words), is_query)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._resolve(key[0], is_query)
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = hit
        if isinstance(hit, int):
            raise ScpiError(hit)
        return hit

    def _resolve(self, words: tuple[str, ...], is_query: bool) -> tuple[Command, tuple[int, ...]] | int:
        best: tuple[int, Command, tuple[int, ...]] | None = None
        for command in self.commands:
            if (command.query if is_query else command.set) is None:
                continue
            m = command.pattern.match(words)
            if m is not None and (best is None or m[0] < best[0]):
                best = (m[0], command, m[1])
        if best is None:
            return -113
        if any(not 1 <= s <= self.max_suffix for s in best[2]):
            return -114
        return best[1], best[2]
