"""Development tooling: the demo database, the capacity proxy and its model, local dynalite.

Production modules never import this package (a ruff rule holds that line), and the wheel
`carve deploy` ships to AWS Glue leaves it out. `carve demo` and `carve proxy` come from here
through the `carve.commands` entry points of a development install.
"""
