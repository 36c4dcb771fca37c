"""`python -m boneage` is the `boneage` console script."""

import sys

from boneage.cli import main

sys.exit(main())
