"""Write resources/models/manifest.json from the weight files in that folder (verified).

The measured K and texture strength of an adapter (`"recommended"`, written by
scripts/choose_defaults.py --write-manifest) are kept for the same task and file name; measure
again after replacing an adapter file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dtpm_core.files.atomic import write_text_atomic
from dtpm_core.modelfiles.recommended import RECOMMENDED_KEY, SOURCE_KEY
from dtpm_core.modelfiles.verified import read_adapter_info
from dtpm_core.modelfiles.weights import load_base
from dtpm_core.options import TASKS
from dtpm_core.singlepass.info import read_singlepass_info

SINGLEPASS_FILE = "singlepass.safetensors"

ORDER = list(TASKS)


def main(folder: str) -> None:
    root = Path(folder)
    old = json.loads((root / "manifest.json").read_text(encoding="utf-8")) \
        if (root / "manifest.json").is_file() else {}
    measured = {(a["task"], a["file"]): a[RECOMMENDED_KEY] for a in old.get("adapters", [])
                if RECOMMENDED_KEY in a}
    has_base = (root / "base.safetensors").is_file()
    accepted = load_base(root / "base.safetensors")[1].identities if has_base else frozenset()
    adapters = []
    for path in sorted(root.glob("*.safetensors")) if has_base else []:
        if path.name in ("base.safetensors", SINGLEPASS_FILE):
            continue
        info = read_adapter_info(path)
        if info.base_sha256 not in accepted:
            raise SystemExit(f"{path} was trained on another base")
        adapters.append({"task": info.task, "display_name": info.display_name,
                         "file": path.name})
        if (info.task, path.name) in measured:
            adapters[-1][RECOMMENDED_KEY] = measured[(info.task, path.name)]
    adapters.sort(key=lambda a: ORDER.index(a["task"]) if a["task"] in ORDER else 99)
    manifest = {"base": "base.safetensors" if has_base else None,
                "default_task": "motion-deblur", "adapters": adapters}
    if (root / SINGLEPASS_FILE).is_file():
        info = read_singlepass_info(root / SINGLEPASS_FILE)  # verified
        manifest["singlepass"] = SINGLEPASS_FILE
        print(f"single-pass model for {', '.join(info.tasks)}")
    if any(RECOMMENDED_KEY in a for a in adapters):
        manifest[SOURCE_KEY] = old.get(SOURCE_KEY, "not said")
        print(f"kept the recommended K and strength of "
              f"{', '.join(a['task'] for a in adapters if RECOMMENDED_KEY in a)}")
    write_text_atomic(root / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {root / 'manifest.json'} with {len(adapters)} adapter(s)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "resources/models")
