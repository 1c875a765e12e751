"""Prints a CycloneDX 1.5 SBOM (JSON) of the Python distributions installed in this interpreter.

Run inside an image by images/build.sh (``python -c "$(cat images/sbom.py)" IMAGE``): it
lists what the image's venv really holds (name, version, licence, the package URL), so the
SBOM is a build artefact of the image, not of the source tree. Standard library only.
"""

import datetime
import importlib.metadata
import json
import sys
import uuid


def _component(dist: importlib.metadata.Distribution) -> dict[str, object]:
    name = dist.metadata["Name"]
    version = dist.version
    normalized = name.lower().replace("_", "-").replace(".", "-")
    out: dict[str, object] = {
        "type": "library",
        "bom-ref": f"pkg:pypi/{normalized}@{version}",
        "name": name,
        "version": version,
        "purl": f"pkg:pypi/{normalized}@{version}",
    }
    licence = dist.metadata.get("License-Expression") or dist.metadata.get("License")
    if licence and len(licence) < 100 and "\n" not in licence:
        out["licenses"] = [{"license": {"name": licence}}]
    return out


def main() -> None:
    image = sys.argv[1] if len(sys.argv) > 1 else "unknown"
    seen: dict[str, dict[str, object]] = {}
    for dist in importlib.metadata.distributions():
        if dist.metadata["Name"]:
            component = _component(dist)
            seen[str(component["bom-ref"])] = component
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
            "component": {"type": "container", "name": image},
            "tools": [{"name": "pynomaly images/sbom.py"}],
        },
        "components": sorted(seen.values(), key=lambda c: str(c["name"]).lower()),
    }
    json.dump(bom, sys.stdout, indent=2)
    sys.stdout.write("\n")


main()
