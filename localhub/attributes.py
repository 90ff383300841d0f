"""``.gitattributes`` and ``.gitignore`` matching, and the Hub's default ``.gitattributes`` (hub-protocol §4.2-4.5).

Patterns follow git's wildmatch rules closely enough for the Hub's use: a pattern without ``/`` matches the
basename at any depth, one with ``/`` is anchored at the repo root, ``**`` spans directories, ``[...]`` classes
(including POSIX ``[[:space:]]``) and backslash escapes work, and the last matching line wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LFS_ATTRS = "filter=lfs diff=lfs merge=lfs -text"

_MODEL_LFS_PATTERNS = [
    "*.7z",
    "*.arrow",
    "*.bin",
    "*.bz2",
    "*.ckpt",
    "*.ftz",
    "*.gz",
    "*.h5",
    "*.joblib",
    "*.lfs.*",
    "*.lz4",
    "*.mds",
    "*.mlmodel",
    "*.model",
    "*.msgpack",
    "*.npy",
    "*.npz",
    "*.onnx",
    "*.ot",
    "*.parquet",
    "*.pb",
    "*.pickle",
    "*.pkl",
    "*.pt",
    "*.pth",
    "*.rar",
    "*.safetensors",
    "saved_model/**/*",
    "*.tar.*",
    "*.tar",
    "*.tflite",
    "*.tgz",
    "*.wasm",
    "*.xz",
    "*.zip",
    "*.zst",
    "*tfevents*",
]

# Datasets also track media files, grouped under comments as on the real Hub.
_DATASET_MEDIA_PATTERNS = (
    ("Audio files - uncompressed", "*.pcm *.sam *.raw"),
    ("Audio files - compressed", "*.aac *.flac *.mp3 *.ogg *.wav"),
    ("Image files - uncompressed", "*.bmp *.gif *.png *.tiff"),
    ("Image files - compressed", "*.jpg *.jpeg *.webp"),
    ("Video files - compressed", "*.mp4 *.webm"),
)


def default_gitattributes(repo_type: str) -> str:
    """The ``.gitattributes`` of a repo's initial commit."""
    lines = [f"{p} {_LFS_ATTRS}" for p in _MODEL_LFS_PATTERNS]
    if repo_type == "dataset":
        for comment, patterns in _DATASET_MEDIA_PATTERNS:
            lines.append(f"# {comment}")
            lines.extend(f"{p} {_LFS_ATTRS}" for p in patterns.split())
    return "\n".join(lines) + "\n"


def lfs_attributes_line(path: str) -> str:
    """A ``.gitattributes`` line tracking exactly ``path`` with LFS (used to auto-track committed LFS files)."""
    escaped = re.sub(r"([*?\[\\])", r"\\\1", path).replace(" ", "[[:space:]]")
    return f"{escaped} {_LFS_ATTRS}"


# --- Pattern compilation ---------------------------------------------------------------------------------------

_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \\t",
    "digit": "0-9",
    "lower": "a-z",
    "upper": "A-Z",
    "space": " \\t\\n\\r\\f\\v",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "xdigit": "0-9a-fA-F",
}


def _translate_class(pattern: str, i: int) -> tuple[str, int]:
    """Translate the ``[...]`` class starting at ``pattern[i] == "["``; returns (regex, index after it)."""
    j = i + 1
    negate = j < len(pattern) and pattern[j] in "!^"
    if negate:
        j += 1
    parts: list[str] = []
    first = True
    while j < len(pattern) and (pattern[j] != "]" or first):
        first = False
        if pattern.startswith("[:", j) and (end := pattern.find(":]", j + 2)) != -1:
            parts.append(_POSIX_CLASSES.get(pattern[j + 2 : end], ""))
            j = end + 2
        elif pattern[j] == "\\" and j + 1 < len(pattern):
            parts.append(re.escape(pattern[j + 1]))
            j += 2
        else:
            parts.append("-" if pattern[j] == "-" else re.escape(pattern[j]))  # "-" keeps its range meaning
            j += 1
    if j >= len(pattern):  # unterminated: a literal "["
        return re.escape("["), i + 1
    body = "".join(parts)
    return (f"[^/{body}]" if negate else f"[{body}]"), j + 1


def glob_to_regex(pattern: str) -> str:
    """Regex source for a wildmatch pattern matched against a full ``/``-separated path."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                at_start = i == 0 or pattern[i - 1] == "/"
                after = i + 2
                if at_start and after < n and pattern[after] == "/":
                    out.append("(?:.*/)?")  # "**/" : zero or more directories
                    i = after + 1
                    continue
                if at_start and after == n:
                    out.append(".*")  # trailing "/**": everything inside
                    i = after
                    continue
                out.append("[^/]*")  # "**" not delimited by slashes acts like "*"
                i = after
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            regex, i = _translate_class(pattern, i)
            out.append(regex)
            continue
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    anchored: bool  # matched against the full path (else against the basename)
    negated: bool = False
    dir_only: bool = False

    def matches(self, path: str) -> bool:
        target = path if self.anchored else path.rsplit("/", 1)[-1]
        return self.regex.fullmatch(target) is not None


def _compile(pattern: str, *, negated: bool = False, dir_only: bool = False) -> _Pattern:
    anchored = "/" in pattern
    pattern = pattern.removeprefix("/")
    return _Pattern(re.compile(glob_to_regex(pattern), re.DOTALL), anchored, negated, dir_only)


def _split_attr_line(line: str) -> tuple[str, list[str]]:
    """Pattern and attribute tokens of a ``.gitattributes`` line (the pattern may be double-quoted)."""
    if line.startswith('"') and (end := line.find('"', 1)) != -1:
        return line[1:end], line[end + 1 :].split()
    pattern, *attrs = line.split()
    return pattern, attrs


class GitAttributes:
    """The LFS-relevant part of a ``.gitattributes`` file: which paths have ``filter=lfs``."""

    def __init__(self, text: str) -> None:
        # (pattern, filter value after this line: "lfs", another filter, or None when unset)
        self._rules: list[tuple[_Pattern, str | None]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#") or line.startswith("!"):
                continue  # negative patterns are forbidden in gitattributes
            pattern, attrs = _split_attr_line(line)
            if pattern.endswith("/"):
                continue  # git ignores directory patterns in gitattributes
            for attr in attrs:
                if attr.startswith("filter="):
                    self._rules.append((_compile(pattern), attr.partition("=")[2]))
                elif attr in ("-filter", "!filter"):
                    self._rules.append((_compile(pattern), None))

    def is_lfs(self, path: str) -> bool:
        """Whether ``path`` (relative to the repo root) is tracked by LFS; the last matching rule wins."""
        for pattern, value in reversed(self._rules):
            if pattern.matches(path):
                return value == "lfs"
        return False


class GitIgnore:
    """``.gitignore`` rules of the repo root: ``*.log``, ``nested/*``, ``build/``, ``!keep.log``..."""

    def __init__(self, text: str) -> None:
        self._rules: list[_Pattern] = []
        for raw in text.splitlines():
            line = raw.rstrip() if not raw.rstrip().endswith("\\") else raw
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            if negated:
                line = line[1:]
            elif line.startswith("\\"):
                line = line[1:]  # "\!" and "\#" escape a leading special character
            dir_only = line.endswith("/")
            self._rules.append(_compile(line.rstrip("/"), negated=negated, dir_only=dir_only))

    def _decision(self, path: str, is_dir: bool) -> bool | None:
        for rule in reversed(self._rules):
            if (is_dir or not rule.dir_only) and rule.matches(path):
                return not rule.negated
        return None

    def is_ignored(self, path: str) -> bool:
        """Whether the file ``path`` is ignored; a file inside an ignored directory cannot be re-included."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if self._decision("/".join(parts[:depth]), is_dir=True):
                return True
        return bool(self._decision(path, is_dir=False))
