import sys

from trimpomdp.cli.main import run

run()
