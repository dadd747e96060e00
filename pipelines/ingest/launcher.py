"""Dataflow Flex Template launcher: hands the template's parameters to the package's job."""

import logging
import sys

from dicomwarehouse.pipeline.job import run

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    run(sys.argv[1:])
