#!/usr/bin/env python3
"""Prints the Debian archive entries apt uses on this machine, as one deb822 sources file.

The base image is bootstrapped (mmdebstrap) from the same archive the host's apt reads, so no
archive host name is written into the repository: it is read here, at build time, from
/etc/apt/sources.list and /etc/apt/sources.list.d/*.{list,sources}. Only entries whose
suite is the requested release (``bookworm``, ``bookworm-updates``, ``bookworm-security``)
are kept; third-party repositories on the host are left out.

    apt_sources.py [SUITE]      (default bookworm)
"""

from __future__ import annotations

import sys
from pathlib import Path

APT = Path("/etc/apt")


def _deb822(text: str, release: str) -> list[str]:
    out = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        if fields.get("Enabled", "yes").lower() == "no":
            continue
        suites = [s for s in fields.get("Suites", "").split() if s.split("-")[0] == release]
        if "deb" not in fields.get("Types", "").split() or not suites or "URIs" not in fields:
            continue
        out.append(
            "\n".join(
                [
                    "Types: deb",
                    f"URIs: {fields['URIs']}",
                    f"Suites: {' '.join(suites)}",
                    f"Components: {fields.get('Components', 'main')}",
                    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
                ]
            )
        )
    return out


def _one_line(text: str, release: str) -> list[str]:
    out = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        rest = words[1:]
        if rest[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while rest and not rest[0].endswith("]"):
                rest.pop(0)
            rest = rest[1:]
        if len(rest) < 2:
            continue
        uri, suite, *components = rest
        if suite.split("-")[0] == release:
            out.append(
                f"Types: deb\nURIs: {uri}\nSuites: {suite}\n"
                f"Components: {' '.join(components) or 'main'}\n"
                "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
            )
    return out


def main() -> int:
    release = sys.argv[1] if len(sys.argv) > 1 else "bookworm"
    stanzas: list[str] = []
    files = [APT / "sources.list", *sorted((APT / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        if path.suffix == ".sources":
            stanzas += _deb822(path.read_text(), release)
        elif path.suffix == ".list" or path.name == "sources.list":
            stanzas += _one_line(path.read_text(), release)
    if not stanzas:
        print(f"no {release} entries in {APT}/sources.list*", file=sys.stderr)
        return 1
    print("\n\n".join(stanzas))
    return 0


if __name__ == "__main__":
    sys.exit(main())
