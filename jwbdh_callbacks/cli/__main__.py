"""``python -m jwbdh_callbacks.cli ...`` is ``jwbdh-eval ...`` (the form torchrun launches)."""

import sys

from jwbdh_callbacks.cli.evaluate import eval_main

sys.exit(eval_main())
