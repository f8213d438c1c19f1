"""The one place the components' container image is named.

Override at compile time with SOCRATIC_SDG_IMAGE (e.g. a digest-pinned release reference); the
committed pipeline YAML is compiled with the default.
"""

import os

DEFAULT_RUNTIME_IMAGE = "quay.io/socratic-sdg/socratic-sdg:0.1.0"
RUNTIME_IMAGE = os.environ.get("SOCRATIC_SDG_IMAGE", DEFAULT_RUNTIME_IMAGE)
