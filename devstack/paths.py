"""Where the local stack keeps its state: a git-ignored folder at the top of the checkout."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = Path(os.environ.get("DEVSTACK_DIR", REPO_ROOT / ".devstack"))
ENV_FILE = STATE_DIR / "env"
