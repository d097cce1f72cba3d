"""The project's text files hold text: no control characters (an unescaped backslash in a Python edit)."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_control_characters_in_tracked_text_files():
    # a docstring written through a non-raw string once held BEL and TAB for "\alpha" and "\times"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    texts = [f for f in files if f.endswith((".py", ".md", ".toml", ".txt", ".cfg", ".yml", ".yaml"))]
    assert len(texts) > 50, texts  # the checkout's files, not an empty listing
    bad = {}
    for name in texts:
        found = re.findall(r"[\x00-\x08\x0b-\x1f\x7f]", (ROOT / name).read_text(encoding="utf-8"))
        if found:
            bad[name] = sorted({f"\\x{ord(c):02x}" for c in found})
    assert not bad, bad
