from trimpomdp.cli.main import run

run()
