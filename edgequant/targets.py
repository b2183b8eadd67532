"""Contracts shared below their users: the deployment targets.

A leaf module (no edgequant imports), so config_check and the flow both read it without
importing each other.
"""

TARGETS = ("edgetpu", "cpu")  # edgetpu: uint8 full-integer variants that compile; cpu: any recipe
