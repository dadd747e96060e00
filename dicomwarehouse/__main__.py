"""``python -m dicomwarehouse``: the same as the ``dicomwarehouse`` command."""

import sys

from dicomwarehouse.cli import main

sys.exit(main())
