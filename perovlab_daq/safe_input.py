"""Bounded reading of user files and checks of user paths: data only, never code.

Every file a user hands the program (bench file, recipe, parameter file) is read here:

* only a regular file is read (a FIFO, device or folder is refused at once, without
  blocking: checked with ``os.stat`` before opening, opened with ``O_NONBLOCK`` and checked
  again on the open descriptor);
* at most :data:`MAX_FILE_BYTES` are read, as UTF-8;
* YAML is composed by :class:`BoundedSafeLoader`: PyYAML's safe loader (plain data, no
  tags that build objects) that also counts nesting depth, aliases and the size of the
  document *after* alias expansion, so an alias bomb ("billion laughs") is refused after
  a few hundred nodes instead of being expanded by whoever walks the data later;
* ``!!binary``, ``!!set``, ``!!omap`` and ``!!pairs`` are refused too: a value is a
  string, number, boolean, null, date, list or mapping.

Output paths are checked here as well (:func:`check_output_folder`,
:func:`check_new_output_file`), so a run is refused before any instrument is opened when
its file could not be written. Every problem is an :class:`UnsafeInputError` whose
one-line message names the file; callers re-raise it as their own bad-input error.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

#: Largest user file read (bench file, recipe, parameter file), in bytes.
MAX_FILE_BYTES = 1 << 20
#: Deepest nesting of lists and mappings in a YAML document.
MAX_DEPTH = 32
#: Most alias uses (``*name``) in one YAML document.
MAX_ALIASES = 100
#: Most nodes of a YAML document counted with every alias expanded.
MAX_EXPANDED_NODES = 100_000


class UnsafeInputError(ValueError):
    """A user file or path cannot be used; the message names it and says why (one line)."""


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_regular_file(path: str | os.PathLike[str], what: str = "file") -> os.stat_result:
    """Return the ``os.stat`` of ``path`` if it is an existing regular file.

    Raises
    ------
    UnsafeInputError
        Naming the path when it is missing, unreadable, or a folder, FIFO, socket or device.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UnsafeInputError(f"{path}: cannot read {what} (no such file)") from None
    except OSError as exc:
        raise UnsafeInputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except ValueError:  # an embedded NUL byte
        raise UnsafeInputError(f"{path!r}: not a valid file name") from None
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeInputError(f"{path}: {what} is {_kind_of(info.st_mode)}, not a regular file")
    return info


def read_text_bounded(
    path: str | os.PathLike[str], what: str = "file", max_bytes: int = MAX_FILE_BYTES
) -> str:
    """Return the UTF-8 text of a regular file of at most ``max_bytes`` bytes.

    Raises
    ------
    UnsafeInputError
        For a missing, unreadable, non-regular, too large or non-UTF-8 file.
    """
    info = check_regular_file(path, what)
    if info.st_size > max_bytes:
        raise UnsafeInputError(
            f"{path}: {what} is {info.st_size} bytes, more than the {max_bytes} allowed"
        )
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UnsafeInputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        # Swapped for a FIFO between stat and open? Check what was actually opened.
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeInputError(f"{path}: {what} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise UnsafeInputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnsafeInputError(f"{path}: {what} is larger than the {max_bytes} bytes allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeInputError(
            f"{path}: {what} is not UTF-8 text (byte {exc.start}: {data[exc.start]:#04x})"
        ) from None


# --------------------------------------------------------------------------- YAML
class BoundedSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits on depth, aliases and expanded size.

    PyYAML composes an alias as a reference to the anchored node, so loading an alias
    bomb is cheap; walking the result (printing it, copying it, checking it) is not. The
    loader therefore counts, while composing, how many nodes the document would have
    with every alias expanded, and stops at :data:`MAX_EXPANDED_NODES`.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._expanded: dict[int, int] = {}
        self._total = 0

    @staticmethod
    def _limit(problem: str) -> yaml.YAMLError:
        return yaml.YAMLError(problem)

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML hook
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise self._limit(f"more than {MAX_ALIASES} aliases (*name)")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self._limit(f"nested deeper than {MAX_DEPTH} levels")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._count(node)
        return node

    def _count(self, node: Any) -> None:
        key = id(node)
        if key in self._expanded:  # an alias: its whole subtree again
            size = self._expanded[key]
        else:
            size = 1
            if isinstance(node, yaml.SequenceNode):
                size += sum(self._expanded.get(id(child), 1) for child in node.value)
            elif isinstance(node, yaml.MappingNode):
                size += sum(
                    self._expanded.get(id(k), 1) + self._expanded.get(id(v), 1)
                    for k, v in node.value
                )
            self._expanded[key] = size
            self._total += 1
            if self._total > MAX_EXPANDED_NODES:
                raise self._limit(f"more than {MAX_EXPANDED_NODES} values")
        if size > MAX_EXPANDED_NODES:
            raise self._limit(
                f"expands to more than {MAX_EXPANDED_NODES} values (aliases of aliases?)"
            )


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, f"tag {node.tag!r} is not allowed (plain data only)", node.start_mark
    )


for _tag in ("binary", "set", "omap", "pairs"):
    BoundedSafeLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def parse_yaml(text: str, source: str = "<text>", what: str = "") -> Any:
    """Parse YAML text as plain data within the limits of :class:`BoundedSafeLoader`.

    ``what`` (``"bench file"``) makes the message "not a valid YAML bench file".

    Raises
    ------
    UnsafeInputError
        Naming ``source``, the line and the problem.
    """
    not_valid = f"not a valid YAML {what}" if what else "not valid YAML"
    depth = flow_depth(text)
    if depth > MAX_DEPTH:
        raise UnsafeInputError(f"{source}: {not_valid}: brackets nested more than {MAX_DEPTH} deep")
    loader: BoundedSafeLoader | None = None
    try:
        loader = BoundedSafeLoader(text)  # the reader refuses control characters here
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise UnsafeInputError(f"{source}: {not_valid}{_describe(exc)}") from None
    except RecursionError:
        raise UnsafeInputError(f"{source}: {not_valid}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


_FLOW_CHARACTERS = re.compile(r"[\[\]{}'\"#\n]")


def flow_depth(text: str) -> int:
    """Return how deeply ``[`` and ``{`` nest in YAML text, counting to ``MAX_DEPTH + 1``.

    Quotes and comments are skipped.

    PyYAML's scanner keeps one possible key per open bracket and re-checks them all at
    every token, so deeply nested brackets cost time quadratic in their number: a 1 MiB
    file of ``[`` would take hours. This linear scan refuses them first.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0
    depth = deepest = 0
    quote = ""
    comment = False
    for match in _FLOW_CHARACTERS.finditer(text):
        char = match.group()
        if comment:
            comment = char != "\n"
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#":
            comment = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:  # enough to refuse; no need to read on
                return deepest
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


def _describe(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None)
    if problem is None and not isinstance(exc, yaml.MarkedYAMLError):
        problem = str(exc)
    problem = " ".join(str(problem or "syntax error").split())[:200]
    return f"{where}: {problem}"


def load_yaml_file(
    path: str | os.PathLike[str], what: str = "file", *, name_kind: bool = False
) -> Any:
    """Read a user's YAML (or JSON) file as plain data, bounded in size, depth and aliases.

    Parameters
    ----------
    path
        A regular file of at most :data:`MAX_FILE_BYTES` bytes of UTF-8.
    what
        What the file is (``"bench file"``, ``"recipe"``), for the messages.
    name_kind
        Say "not a valid YAML <what>" rather than "not valid YAML" on a syntax error.

    Raises
    ------
    UnsafeInputError
        A one-line message naming the file and the problem.
    """
    return parse_yaml(read_text_bounded(path, what), str(path), what if name_kind else "")


# --------------------------------------------------------------------------- output paths
def _existing_ancestor(path: Path) -> Path:
    current = path
    while not current.exists() and not current.is_symlink():
        if current.parent == current:
            break
        current = current.parent
    return current


def check_output_folder(folder: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Check that files can be created in ``folder`` (it may be created, with its parents).

    Raises
    ------
    UnsafeInputError
        Naming the path when it, or the nearest existing folder above it, is not a folder
        or not writable.
    """
    target = Path(folder)
    if len(os.fsencode(target)) > 3500:
        raise UnsafeInputError(f"{what} {str(target)[:80]!r}...: path too long")
    existing = _existing_ancestor(target)
    try:
        info = os.stat(existing)
    except OSError as exc:
        raise UnsafeInputError(
            f"{what} {str(target)!r}: {existing} cannot be used ({exc.strerror or exc})"
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        where = "" if existing == target else f" ({str(existing)!r} is in the way)"
        raise UnsafeInputError(f"{what} {str(target)!r} is not a folder{where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnsafeInputError(
            f"{what} {str(target)!r}: no permission to write in {str(existing)!r}"
        )
    return target


def check_new_output_file(path: str | os.PathLike[str], what: str = "output file") -> Path:
    """Check that ``path`` can be written: its folder exists and is writable.

    An existing regular file may be replaced (reports); anything else in the way is refused.

    Raises
    ------
    UnsafeInputError
        Naming the path and the problem.
    """
    target = Path(path)
    if target.exists() or target.is_symlink():
        try:
            info = os.stat(target)
        except OSError as exc:
            raise UnsafeInputError(f"{what} {str(target)!r}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeInputError(
                f"{what} {str(target)!r} is {_kind_of(info.st_mode)}, not a file"
            )
        if not os.access(target, os.W_OK):
            raise UnsafeInputError(f"{what} {str(target)!r}: no permission to write it")
    parent = target.parent
    if not parent.exists():
        raise UnsafeInputError(f"{what} {str(target)!r}: folder {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise UnsafeInputError(f"{what} {str(target)!r}: {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UnsafeInputError(f"{what} {str(target)!r}: no permission to write in {str(parent)!r}")
    return target
