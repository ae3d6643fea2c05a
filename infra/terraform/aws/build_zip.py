"""Build a deterministic zip of a directory's top-level *.py files: ``build_zip.py SRC OUT``.

Same bytes for the same sources (sorted entries, fixed timestamp and mode), so a rebuilt package
never looks like a code change. Standard library only: it runs under any python3.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def build(src: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(src.glob("*.py")):
            info = zipfile.ZipInfo(path.name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    os.replace(tmp, out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: build_zip.py SRC_DIR OUT_ZIP")
    build(Path(sys.argv[1]), Path(sys.argv[2]))
