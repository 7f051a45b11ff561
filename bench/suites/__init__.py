"""Task suites: LIBERO (real simulator), SimplerEnv (optional) and a fake env for tests.

Simulator imports happen only inside the functions that build an env.
"""
