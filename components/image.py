"""The one place the components' container images are named.

Override at compile time with SOCRATIC_SDG_IMAGE / SOCRATIC_SDG_CONVERT_IMAGE (e.g. digest-pinned
release references, see `make compile IMAGE=...`); the committed pipeline YAML uses the defaults.
"""

import os

IMAGE_REPOSITORY = "quay.io/socratic-sdg"
VERSION = "0.1.0"
# The library, kfp, sdg_hub, docling (native pipeline): every task but conversion.
RUNTIME_IMAGE = os.environ.get("SOCRATIC_SDG_IMAGE", f"{IMAGE_REPOSITORY}/socratic-sdg:{VERSION}")
# The runtime image plus docling's layout/table/formula models baked in (standard pipeline).
CONVERT_IMAGE = os.environ.get("SOCRATIC_SDG_CONVERT_IMAGE", f"{IMAGE_REPOSITORY}/socratic-sdg-convert:{VERSION}")
