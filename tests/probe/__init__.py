"""The bad-input probe (issue 21 item 7): every binary, run as a hostile but realistic new user
would, over six classes of input, each case judged clean, accepted, silent, traceback, lost,
unsafe or hang (verdict.py). tests/test_probe.py runs each case as a test; `python -m
tests.probe` prints the totals."""
