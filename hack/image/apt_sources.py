"""Print the host's Debian mirrors as one-line apt sources for a bookworm base.

Called by ``hack/image/base.sh``: the local base image is built by mmdebstrap from
the mirrors this machine's apt already uses (so no mirror is written in the repo),
but always for bookworm, whatever release the host runs. Reads the deb822
``/etc/apt/sources.list.d/*.sources`` and the one-line ``sources.list`` files; a
mirror that serves ``*-security`` suites is taken as the security mirror.
"""

from __future__ import annotations

import sys
from pathlib import Path

APT = Path("/etc/apt")
SUITE = "bookworm"


def _deb822(text: str) -> list[tuple[list[str], list[str]]]:
    """(URIs, suites) of each ``Types: deb`` stanza."""
    found = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            found.append((fields.get("uris", "").split(), fields.get("suites", "").split()))
    return found


def _one_line(text: str) -> list[tuple[list[str], list[str]]]:
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 3 and words[0] == "deb":
            words = [w for w in words if not w.startswith("[")]  # options such as [arch=...]
            found.append(([words[1]], [words[2]]))
    return found


def mirrors() -> tuple[str | None, str | None]:
    """The host's (Debian, Debian security) mirror URIs."""
    entries = []
    for path in sorted((APT / "sources.list.d").glob("*.sources")):
        entries += _deb822(path.read_text())
    for path in [APT / "sources.list", *sorted((APT / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            entries += _one_line(path.read_text())
    main = security = None
    for uris, suites in entries:
        if not uris:
            continue
        if any(s.endswith("-security") or s.endswith("/updates") for s in suites):
            security = security or uris[0]
        else:
            main = main or uris[0]
    return main, security


def main() -> int:
    debian, security = mirrors()
    if debian is None:
        print(f"no Debian mirror in {APT}/sources.list(.d)", file=sys.stderr)
        return 1
    print(f"deb {debian.rstrip('/')} {SUITE} main")
    print(f"deb {debian.rstrip('/')} {SUITE}-updates main")
    if security:
        print(f"deb {security.rstrip('/')} {SUITE}-security main")
    return 0


if __name__ == "__main__":
    sys.exit(main())
