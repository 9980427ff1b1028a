"""Hypothesis settings shared by the fuzz tests: reproducible in CI, no deadline, and a blob to replay a failure."""

from hypothesis import HealthCheck, settings

# derandomize: every run tries the same examples, so CI is reproducible and a failure recurs locally; print_blob
# prints the @reproduce_failure line for it. No example database: derandomized runs have nothing to replay.
# Fixtures used here are stateless (tmp_path is cleaned by each example itself, the hashing embedder keeps no state
# that matters), so sharing a function-scoped fixture between examples is fine.
settings.register_profile(
    "fuzz",
    derandomize=True,
    print_blob=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
