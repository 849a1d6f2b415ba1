# Fixtures that run a whole Mend region (see cli/src/mend_cli/pytest_stack.py).
pytest_plugins = ["mend_cli.pytest_stack"]
