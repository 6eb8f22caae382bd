"""Command-line checking: the parser every command uses and the ``type=`` functions of its options.

Every value is checked while the command line is parsed, before anything is loaded: a bad one ends the
command with one line on stderr (``error: --temperature must be >= 0, got -1``) and exit status 2, never a
traceback. ``--help`` shows each option's default, taken from where the default lives (GenerationParams,
EngineConfig, Recipe, ...), not repeated here."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
from collections.abc import Callable, Iterable, Sequence

from ..errors import AspdLocalError


class UsageError(AspdLocalError):
    """A bad command line: reported as one line, exit status 2."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to every option that has a real default (not None, not an on/off flag)."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if "%(default)" in text or d is None or d is argparse.SUPPRESS or isinstance(d, bool):
            return text
        if not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)):
            return text
        return (text + " " if text else "") + "(default: %(default)s)"


# argparse's own messages after "argument X: " start with these; ours are phrased to follow the option name
_FOLLOWS_NAME = ("must ", "is ", "lists ")


def one_line(message: str) -> str:
    """argparse's ``argument --top-p: must be in (0, 1], got 2`` as ``--top-p must be in (0, 1], got 2``."""
    m = re.match(r"argument (\S+): (.*)", message, re.S)
    if m:
        name, rest = m[1].split("/")[-1], m[2]
        if not name.startswith("-") and rest.startswith(name + " "):  # "model file not found: x" names it
            message = rest
        elif rest.startswith(_FOLLOWS_NAME):
            message = f"{name} {rest}"
        else:
            message = f"{name}: {rest}"
    return " ".join(message.split())


class CliParser(argparse.ArgumentParser):
    """Shows defaults in --help; a bad command line raises UsageError (main prints it as one line) instead
    of printing the usage and exiting. Sub-command parsers are made of the same class."""

    def __init__(self, *args, **kw):
        kw.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kw)

    def error(self, message):
        raise UsageError(one_line(message))


class LazyChoices(Sequence):
    """``choices=`` read when first needed (a value to check, --help), not when the parser is built: the
    list lives in a module that the other commands need not import."""

    def __init__(self, load: Callable[[], Iterable[str]]):
        self._load = load
        self._values: tuple[str, ...] | None = None

    def _get(self) -> tuple[str, ...]:
        if self._values is None:
            self._values = tuple(self._load())
        return self._values

    def __contains__(self, value) -> bool:
        return value in self._get()

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __getitem__(self, i):
        return self._get()[i]


# ---------------------------------------------------------------------------------------------------------
# type= functions: each returns the checked value or raises ArgumentTypeError with a short message


def _named(fn: Callable, name: str) -> Callable:
    fn.__name__ = name
    return fn


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def parse_int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """A whole number in [lo, hi] (either end may be open-ended: None)."""

    def check(text: str) -> int:
        n = parse_int(text)
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            want = f"in [{lo}, {hi}]" if lo is not None and hi is not None else \
                f">= {lo}" if lo is not None else f"<= {hi}"
            raise argparse.ArgumentTypeError(f"must be {want}, got {n}")
        return n

    return _named(check, "integer")


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False) -> Callable[[str], float]:
    """A finite number between lo and hi; ``lo_open``/``hi_open`` leave that end out."""

    def check(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        low_bad = lo is not None and (x <= lo if lo_open else x < lo)
        high_bad = hi is not None and (x >= hi if hi_open else x > hi)
        if not math.isfinite(x) or low_bad or high_bad:
            if lo is not None and hi is not None:
                want = f"in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"
            elif lo is not None:
                want = f"{'>' if lo_open else '>='} {_fmt(lo)}"
            elif hi is not None:
                want = f"{'<' if hi_open else '<='} {_fmt(hi)}"
            else:
                want = "a finite number"
            raise argparse.ArgumentTypeError(f"must be {want}, got {text}")
        return x

    return _named(check, "number")


def _alternatives(values: Iterable[str]) -> str:
    values = list(values)
    return f"{values[0]} or {values[1]}" if len(values) == 2 else f"one of {', '.join(values)}"


def one_of(values: Iterable[str]) -> Callable[[str], str]:
    """Like ``choices=``, with a message in the form of the others (for options whose help lists them)."""
    values = tuple(values)

    def check(text: str) -> str:
        if text not in values:
            raise argparse.ArgumentTypeError(f"must be {_alternatives(values)}, got {text!r}")
        return text

    return _named(check, "choice")


def _items(text: str) -> list[str]:
    return [s.strip() for s in str(text).split(",")]


def int_list(lo: int = 1, hi: int | None = None) -> Callable[[str], list[int]]:
    """Comma-separated whole numbers in [lo, hi], none twice (e.g. concurrency levels ``1,2,4,8``)."""
    each = integer(lo, hi)

    def check(text: str) -> list[int]:
        parts = _items(text)
        if not parts or any(not s for s in parts):
            raise argparse.ArgumentTypeError(f"must be comma-separated integers >= {lo}, got {text!r}")
        values = [each(s) for s in parts]
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"lists a level twice: {text!r}")
        return values

    return _named(check, "list")


def name_list(known: Iterable[str]) -> Callable[[str], list[str]]:
    """Comma-separated names out of ``known``, at least one, none twice."""
    known = tuple(known)

    def check(text: str) -> list[str]:
        names = [s for s in _items(text) if s]
        unknown = [s for s in names if s not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"must be comma-separated names out of {', '.join(known)}, got {text!r}")
        if len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(f"lists a name twice: {text!r}")
        return names

    return _named(check, "list")


def bench_modes(text: str) -> list[str]:
    """``ar,sequential,parallel``, ``parallel+suffix``, ``ar+lookup``: checked by the bench runner."""
    from ..bench.runner import parse_modes

    names = [s for s in _items(text) if s]
    if not names:
        raise argparse.ArgumentTypeError(f"must list at least one mode, got {text!r}")
    try:
        parse_modes(names)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return names


def aspd_tokens(text: str) -> str:
    """Six comma-separated token ids or texts, in the order of the six ASPD roles."""
    from ..aspd.tokens import ROLES

    parts = _items(text)
    if len(parts) != len(ROLES) or not all(parts):
        raise argparse.ArgumentTypeError(f"must be {len(ROLES)} comma-separated tokens ({','.join(ROLES)}), "
                                         f"got {text!r}")
    return text


def gguf_file(text: str) -> str:
    """An existing GGUF file (its magic is read; llama.cpp reports a corrupt one at load time)."""
    from ..llama.model import check_gguf_file

    try:
        check_gguf_file(text)
    except (AspdLocalError, OSError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def base_name(text: str) -> str:
    """A registered base model (``aspd_local.bases``)."""
    from ..bases import names

    return one_of(names())(text)


def base_or_gguf(text: str) -> str:
    """A registered base's name, or a GGUF file (anything with a path separator or a .gguf suffix)."""
    from ..bases import names

    if text in names():
        return text
    if os.sep in text or "/" in text or text.lower().endswith(".gguf"):
        return gguf_file(text)
    raise argparse.ArgumentTypeError(f"must be a GGUF file or a base ({', '.join(names())}), got {text!r}")


def existing_file(text: str) -> str:
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text


def existing_dir(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"no such directory: {text}")
    return text


def output_file(text: str) -> str:
    """A file to write: its directory must exist."""
    d = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(d):
        raise argparse.ArgumentTypeError(f"no such directory: {d}")
    return text


def http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must start with http:// or https://, got {text!r}")
    return text


def json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def shell_words(text: str) -> list[str]:
    try:
        return shlex.split(text or "")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None

