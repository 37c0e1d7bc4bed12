"""Replace python3-installer's console script for kbootd with one that skips `import re`.

    python3 packaging/lean-launcher.py debian/kbootd

installer's template imports `re` only to strip a Windows launcher suffix from sys.argv[0];
on Linux that import is a third of `kbootd version`'s start-up (bench/startup.py
--launcher deb vs lean). A dist-info RECORD entry for it, if any, gets the new hash and size.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from pathlib import Path

LAUNCHER = b"""#!/usr/bin/python3
import sys

from kbootd.cli.main import main

sys.exit(main())
"""


def main(dest: str) -> None:
    script = Path(dest, "usr/bin/kbootd")
    if not script.is_file():
        raise SystemExit(f"{script}: not installed")
    script.write_bytes(LAUNCHER)
    script.chmod(0o755)
    digest = base64.urlsafe_b64encode(hashlib.sha256(LAUNCHER).digest()).rstrip(b"=").decode()
    records = list(Path(dest).glob("usr/lib/python3*/dist-packages/kbootd-*.dist-info/RECORD"))
    if len(records) != 1:
        raise SystemExit(f"{dest}: expected one kbootd RECORD, found {records}")
    lines = records[0].read_text().splitlines()
    # pybuild copies the scripts beside the wheel's RECORD, which may not list them.
    for i, line in enumerate(lines):
        path = line.split(",", 1)[0]
        if path.endswith("/bin/kbootd"):
            lines[i] = f"{path},sha256={digest},{len(LAUNCHER)}"
            records[0].write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
